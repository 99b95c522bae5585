"""Launch the denoiser web page: `python app.py`, then open http://127.0.0.1:7860."""

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # works offline; sends nothing anywhere


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint, .onnx or .engine (default: checkpoints/default-color.safetensors)")
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"])
    ap.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve your network")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--runs-dir", help="where the Train tab writes its runs (default: runs/)")
    ap.add_argument("--data-root", help="let the Train tab use server folders under this one (default: uploads only)")
    ap.add_argument("--max-upload-mb", type=float, default=50, help="largest file an upload may be")
    ap.add_argument("--auth-file", metavar="FILE",
                    help="ask for a login: one user:password per line (use it with --host 0.0.0.0)")
    args = ap.parse_args()

    from denoiser.ui import launch, read_auth_file

    try:
        auth = read_auth_file(args.auth_file) if args.auth_file else None
    except (OSError, ValueError) as e:
        ap.error(f"--auth-file: {e}")
    launch(args.model, host=args.host, port=args.port, backend=args.backend, runs_dir=args.runs_dir,
           data_root=args.data_root, max_upload_mb=args.max_upload_mb, auth=auth)


if __name__ == "__main__":
    main()
