"""The `serve` command: the OpenAI Videos API and the web studio on this machine."""

from __future__ import annotations

import argparse
import os

from nanosora.cli.args import add_threads

LOOPBACK = ("127.0.0.1", "localhost", "::1")
EPILOG = """examples:
  nanosora serve                                   (http://127.0.0.1:8000, the shipped model)
  nanosora serve --port 9000 --api-key secret --data-dir ~/nanosora-jobs
  nanosora serve --host 0.0.0.0 --allow-remote --api-key secret

Then, from any OpenAI client:
  client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="secret")
  video = client.videos.create_and_poll(prompt="a red circle moves right", size="64x64", seconds="2")
  client.videos.download_content(video.id).write_to_file("red.mp4")"""


def add_serve(sub, positive_int) -> None:
    s = sub.add_parser(
        "serve",
        help="serve the OpenAI Videos API (/v1/videos) and a web studio (/)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    s.add_argument("--data-dir", default="nanosora-data", help="jobs and files (default ./nanosora-data)")
    s.add_argument(
        "--api-key",
        default=os.environ.get("NANOSORA_API_KEY"),
        help="require 'Authorization: Bearer KEY' on /v1 (default: $NANOSORA_API_KEY, else none)",
    )
    s.add_argument("--allow-remote", action="store_true", help="allow a --host other than loopback")
    s.add_argument("--workers", type=positive_int, default=1, help="videos generated at once (default 1)")
    s.add_argument("--queue-limit", type=positive_int, default=16, help="queued jobs before 429 (default 16)")
    s.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default 20)")
    add_threads(s)
    s.add_argument(
        "--lora",
        action="append",
        metavar="NAME=FILE[:SCALE]",
        help="load a LoRA adapter as NAME, active at SCALE (default 1) unless a request's 'lora' "
        "field says otherwise; repeatable",
    )
    s.add_argument("--steps", type=positive_int, default=20, help="sampling steps per video (default 20)")
    s.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from nanosora.model import load
    from nanosora.server.api import create_app

    if args.host not in LOOPBACK and not args.allow_remote:
        raise ValueError(
            f"--host {args.host} would accept connections from other machines; add --allow-remote "
            "(and --api-key) to mean it, or use 127.0.0.1"
        )
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} is not valid: use 1 to 65535")
    adapters = {}
    for spec in args.lora or []:
        name, eq, file = spec.partition("=")
        if not eq or not name or not file or ":" in name or "," in name:
            raise ValueError(
                f"--lora {spec!r} is not valid: use NAME=FILE or NAME=FILE:SCALE (a NAME without ':' or ',')"
            )
        adapters[name] = file
    if adapters and args.workers > 1:
        # the workers share one model, and a request's adapters are set on it for its video
        raise ValueError("--lora serves with one worker: drop --workers or set it to 1")
    model = load(args.model, lora=adapters or None)  # fail now, not at the first request
    name = model.config.name
    app = create_app(
        lambda: model,
        args.data_dir,
        model_name=f"nanosora-{name}",
        api_key=args.api_key,
        workers=args.workers,
        queue_limit=args.queue_limit,
        max_upload_mb=args.max_upload_mb,
        steps=args.steps,
        adapters=tuple(adapters),
    )
    print(f"nanosora serving {model.path} at http://{args.host}:{args.port} (API: /v1, studio: /)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
