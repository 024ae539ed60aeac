"""The world benchmark's suites: a validation split apart from the benchmark, three objects,
and the strict integrity figure beside every pass rate."""

from nanosora.evaluation import evaluate


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


def test_shots_suite_names_earlier_objects_and_ground_truth_passes():
    cases = evaluate.suites(4)["shots"]
    assert [len(c.shots) for c in cases] == [2, 3, 2, 3]
    for c in cases:
        colour_shape = " ".join(c.shots[0].split()[2:4])  # "a <size> <colour> <shape> ..."
        assert all(s.startswith(f"the {colour_shape} ") for s in c.shots[1:]), c.shots
    res = evaluate.run(evaluate.WorldReference(), ["shots"], n=4, progress=False)
    assert res["shots"]["rate"] == 1.0 and res["shots"]["integrity"] == 1.0


def test_a_later_shot_must_keep_the_size_it_was_introduced_with():
    import numpy as np

    from nanosora.world.parse import scene_from_prompt
    from nanosora.world.render import render
    from nanosora.world.score import score

    story = "a large blue square stays still, then cut to the blue square bounces"
    kept = render(scene_from_prompt(story, np.random.default_rng(0), 1.0, 4.0), 64, 64, 8, 4.0)
    assert score(kept, 8, story).passed
    shrunk = "a large blue square stays still, then cut to a small blue square bounces"
    frames = render(scene_from_prompt(shrunk, np.random.default_rng(0), 1.0, 4.0), 64, 64, 8, 4.0)
    v = score(frames, 8, story)
    assert not v.passed
    assert any(c.check == "size" and not c.passed for o in v.objects[1:] for c in o.checks)


def test_suite_names_are_those_made_and_the_cli_lists_them(capsys):
    import pytest

    from nanosora import cli
    from nanosora.evaluation import evaluate

    assert tuple(evaluate.suites(1)) == evaluate.SUITE_NAMES
    assert tuple(evaluate.suites(1, validation=True)) == evaluate.SUITE_NAMES
    with pytest.raises(SystemExit):
        cli.main(["eval", "--suite", "nonsense"])
    err = capsys.readouterr().err
    assert "nonsense" in err and "two_objects" in err
