"""Launch the denoiser web page: `python app.py`, then open http://127.0.0.1:7860."""

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # works offline; sends nothing anywhere


def main() -> None:
    from denoiser.deploy.backends import BACKEND_CHOICES

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint, .onnx or .engine (default: checkpoints/default-color.safetensors)")
    ap.add_argument("--backend", default="auto", choices=BACKEND_CHOICES)
    ap.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve your network")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--runs-dir", help="where the Train tab writes its runs (default: runs/)")
    ap.add_argument("--data-root", help="let the Train tab use server folders under this one (default: uploads only)")
    ap.add_argument("--max-upload-mb", type=float, default=50, help="largest file an upload may be")
    ap.add_argument("--auth-file", metavar="FILE",
                    help="ask for a login: one user:password per line (use it with --host 0.0.0.0)")
    ap.add_argument("--admin", action="append", default=[], metavar="USER",
                    help="a user of --auth-file who may stop training runs others started (repeatable)")
    # Defaults live in ui_batch.BatchLimits (not imported here: --help stays quick without gradio).
    ap.add_argument("--batch-max-mp", type=float, metavar="MP",
                    help="megapixels one Batch call may denoise in all, from the image headers; files beyond "
                         "are refused (default 250)")
    ap.add_argument("--batch-max-seconds", type=float, metavar="S",
                    help="wall time one Batch call may run; files not reached are reported (default 900)")
    args = ap.parse_args()

    from denoiser.app.batch_tab import BatchLimits
    from denoiser.app.page import launch, read_auth_file

    try:
        auth = read_auth_file(args.auth_file) if args.auth_file else None
    except (OSError, ValueError) as e:
        ap.error(f"--auth-file: {e}")
    unknown = sorted(set(args.admin) - {user for user, _ in auth or []})
    if unknown:
        ap.error(f"--admin {unknown[0]}: not a user of --auth-file" if auth else "--admin needs --auth-file")
    given = {"max_megapixels": args.batch_max_mp, "max_seconds": args.batch_max_seconds}
    if any(v is not None and v <= 0 for v in given.values()):
        ap.error("--batch-max-mp and --batch-max-seconds must be > 0")
    limits = BatchLimits(**{k: v for k, v in given.items() if v is not None})
    launch(args.model, host=args.host, port=args.port, backend=args.backend, runs_dir=args.runs_dir,
           data_root=args.data_root, max_upload_mb=args.max_upload_mb, auth=auth, batch_limits=limits,
           admins=tuple(args.admin))


if __name__ == "__main__":
    main()
