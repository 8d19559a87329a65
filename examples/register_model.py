"""Register a model only if its training run passes the production reproducibility gate.

    python examples/register_model.py RUN_ID churn-classifier [--model-path model]

Reads MLFLOW_TRACKING_URI like every MLflow script. Exit 1 with the failed rules
listed when the run is not reproducible enough; nothing is registered then.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id", help="the MLflow run that trained the model")
    parser.add_argument("name", help="registered model name")
    parser.add_argument(
        "--model-path", default="model", help="artifact path of the model in the run"
    )
    parser.add_argument(
        "--allow-package",
        action="append",
        default=[],
        metavar="NAME",
        help="a reviewed exception to 'every package reinstallable' (repeatable)",
    )
    args = parser.parse_args(argv)

    import mlflow

    from mlflow_repro_plugin.gate import ReproducibilityError, require_reproducible

    try:
        report = require_reproducible(
            args.run_id, track="production", allow_packages=args.allow_package
        )
    except ReproducibilityError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(report.summary())
    version = mlflow.register_model(f"runs:/{args.run_id}/{args.model_path}", args.name)
    print(f"registered {version.name} version {version.version} from run {args.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
