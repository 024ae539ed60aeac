"""The world benchmark's suites: a validation split apart from the benchmark, three objects,
and the strict integrity figure beside every pass rate."""

from nanosora import evaluate


def test_validation_split_shares_no_case_with_the_benchmark():
    bench, val = evaluate.suites(16), evaluate.suites(16, validation=True)
    assert bench.keys() == val.keys()
    for name in bench:
        a = {(c.prompt, c.seed, c.width, c.height) for c in bench[name]}
        b = {(c.prompt, c.seed, c.width, c.height) for c in val[name]}
        assert a and b and not a & b, name
    # the new suite is drawn after the older ones, so the benchmark's prompts stay as they were
    assert bench["single"][0].prompt == "a medium orange circle moves down"
    assert bench["two_objects"][0].prompt == "a cyan circle stays still and a red square spins"


def test_three_object_prompts_name_three_colours():
    from nanosora.world.parse import parse_prompt

    cases = evaluate.suites(8)["three_objects"]
    assert len(cases) == 8
    for c in cases:
        objs = parse_prompt(c.prompt).shots[0].objects
        assert len(objs) == 3 and len({o.colour for o in objs}) == 3


def test_ground_truth_is_whole_and_the_figure_is_reported(capsys):
    res = evaluate.run(evaluate.WorldReference(), ["three_objects", "single"], n=4, progress=False)
    for r in res.values():
        assert 0 <= r["integrity"] <= 1 and r["integrity"] >= r["rate"]  # a pass includes integrity
    assert res["single"]["integrity"] == 1.0
    assert "whole" in evaluate.table(res).splitlines()[0]
