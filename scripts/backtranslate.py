#!/usr/bin/env python3
"""Back-translation: train on the real pairs and on synthetic ones made from monolingual text.

MONOLINGUAL holds sentences of the target language, one per line. The steps (docs/training.md):

1. the reverse model, target to source: trained on train_dir's pairs with reverse=true and this
   config's other settings, or the run --reverse_run names (one trained with reverse=true);
2. the synthetic pairs: each monolingual sentence translated by the reverse model, drawn with
   decoding=sample and the config's temperature, top_k, top_p and seed (--search: by search,
   with beam_width), written to --synthetic as `--tag + translation<TAB>sentence`; an existing
   --synthetic file is used as it is;
3. the forward model: trained in a new run on train_dir's pairs and the synthetic ones, which
   --synthetic_weight may sample as a corpus of their own.

    python scripts/backtranslate.py monolingual.fr.txt --config configs/transformer.txt
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import TRAINING_KEYS, Parser, import_tensorflow, keys_of, run_script

USES = TRAINING_KEYS  # the Prediction keys among them: how the reverse run samples


def backtranslate(config, args):
    from sequencer import runs
    from sequencer.errors import ConfigError, DataError

    monolingual = Path(args.monolingual)
    if not monolingual.is_file():
        raise DataError(f"monolingual file {monolingual} {'is a folder' if monolingual.is_dir() else 'does not exist'}")
    if config.reverse:
        raise ConfigError("reverse=true would train the forward model target to source; leave it false here")
    if args.synthetic_weight is not None and args.synthetic_weight <= 0:
        raise ConfigError(f"--synthetic_weight {args.synthetic_weight:g} must be above 0")
    synthetic = Path(args.synthetic or config.model_dir / "backtranslated" / f"{monolingual.stem}.txt").absolute()
    reverse_dir = args.reverse_run and runs.find_trained_run(config.model_dir, args.reverse_run)
    if reverse_dir and not runs.load_config(reverse_dir).reverse:
        raise ConfigError(f"{reverse_dir} was not trained with reverse=true: it translates the other way")
    runs.check_new_run(config)
    import_tensorflow()
    from sequencer import Preprocessor, Trainer
    from sequencer.backtranslation import forward_config, write_synthetic_pairs

    if not reverse_dir:
        # A model of its own: from random weights, even where the forward run starts from another (init_from).
        names = {"run_name": config.run_name and f"{config.run_name}-reverse"}
        reverse = config.replace(reverse=True, init_from="", keep_optimizer=False, **names)
        reverse_dir = Trainer(reverse).train(Preprocessor(reverse).load())
    if synthetic.exists():
        print(f"using the synthetic pairs already in {synthetic} (delete it to translate again)", file=sys.stderr)
    else:
        synthetic.parent.mkdir(parents=True, exist_ok=True)
        translator = reverse_translator(reverse_dir, config, args.search)
        made = write_synthetic_pairs(translator, monolingual, synthetic, args.tag)
        print(
            f"{made.pairs:,} synthetic pairs in {synthetic} ({made.blank} blank lines passed over, "
            f"{made.empty} empty translations left out)",
            file=sys.stderr,
        )
    forward = forward_config(config, synthetic, args.synthetic_weight)
    Trainer(forward).train(Preprocessor(forward).load())


def reverse_translator(reverse_dir, config, search: bool):
    """The reverse run's translator, decoding with `config`'s Prediction keys: by sampling one
    translation per sentence unless `search`."""
    from sequencer.devices import configure_device
    from sequencer.runs import load_run
    from sequencer.translation import Translator

    configure_device(config.device, config.threads)
    run = load_run(reverse_dir)
    prediction = {name: getattr(config, name) for name in keys_of("Prediction") if name != "n_best"}
    sampling = {"decoding": "sample", "beam_width": 1}  # one sample a sentence
    settings = {**prediction, **({"decoding": "search"} if search else sampling), "n_best": 1, "seed": config.seed}
    return Translator(run, run.config.replace(**settings))


def parser():
    parser = Parser(__doc__, USES)
    parser.add_argument("monolingual", metavar="MONOLINGUAL", help="sentences of the target language, one per line")
    parser.add_argument("--reverse_run", metavar="RUN", help="a run trained with reverse=true, instead of training one")
    parser.add_argument(
        "--synthetic", metavar="FILE", help="where the synthetic pairs go (default: model_dir/backtranslated/)"
    )
    parser.add_argument(
        "--synthetic_weight",
        type=float,
        metavar="W",
        help="sample the synthetic pairs as a corpus of their own with this weight (the real corpora: 1 unless "
        "train_dir weighs them); by default they join the real pairs",
    )
    parser.add_argument("--tag", default="<bt> ", help="put before every synthetic source (default: '<bt> '; '' none)")
    parser.add_argument("--search", action="store_true", help="translate by search (beam_width) rather than sampling")
    return parser


if __name__ == "__main__":
    run_script(parser(), backtranslate)
