#!/usr/bin/env python3
"""Back-translation (Sennrich et al., 2016): train on the real pairs and on synthetic ones made from monolingual text.

MONOLINGUAL holds sentences of the target language, one per line. The steps:

1. the reverse model, target to source: trained on train_dir's pairs with reverse=true and this
   config's other settings, or the run --reverse_run names (a run trained with reverse=true);
2. the synthetic pairs: each monolingual sentence translated by the reverse model with
   decoding=sample (Edunov et al., 2018, found sampled sources train better than beam search's),
   written to --synthetic as `synthetic source<TAB>monolingual sentence`, each source with --tag
   before it (Caswell et al., 2019: the model learns which sources are synthetic);
3. the forward model: trained on train_dir's pairs and the synthetic ones, as two corpora, the
   synthetic one sampled with --synthetic_weight (the real pairs' weight is 1).

    python scripts/backtranslate.py monolingual.fr.txt --config configs/transformer.txt
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import TRAINING_KEYS, Parser, import_tensorflow, keys_of, run_script

USES = (*TRAINING_KEYS, *keys_of("Prediction"))


def backtranslate(config, args):
    from sequencer import runs
    from sequencer.config import CorpusSource
    from sequencer.data import text_files
    from sequencer.errors import ConfigError, DataError

    monolingual = Path(args.monolingual)
    if not monolingual.is_file():
        raise DataError(f"monolingual file {monolingual} {'is a folder' if monolingual.is_dir() else 'does not exist'}")
    if config.reverse:
        raise ConfigError("reverse=true would make the forward model translate target to source; leave it false")
    synthetic = Path(args.synthetic or config.model_dir / "backtranslated" / f"{monolingual.stem}.txt").absolute()
    reverse_dir = args.reverse_run and runs.find_trained_run(config.model_dir, args.reverse_run)
    if reverse_dir and not runs.load_config(reverse_dir).reverse:
        raise ConfigError(f"{reverse_dir} was not trained with reverse=true: it translates the other way")
    runs.check_new_run(config)
    del text_files
    import_tensorflow()
    from sequencer import Preprocessor, Trainer
    from sequencer.prediction import Predictor

    if not reverse_dir:
        reverse = config.replace(reverse=True, run_name=config.run_name and f"{config.run_name}-reverse")
        reverse_dir = Trainer(reverse).train(Preprocessor(reverse).load())
    sampling = runs.load_config(reverse_dir).replace(decoding="sample", n_best=1, seed=config.seed)
    predictor = Predictor(runs.load_run(reverse_dir), sampling)
    predictor.translate_file(monolingual, synthetic, tag=args.tag, with_input=True)
    forward = config.replace(
        train_dir=(*(CorpusSource(source.path, source.weight or 1.0) for source in config.train_dir),
                   CorpusSource(synthetic, args.synthetic_weight)),
    )
    Trainer(forward).train(Preprocessor(forward).load())


def parser():
    parser = Parser(__doc__, USES)
    parser.add_argument("monolingual", metavar="MONOLINGUAL", help="sentences of the target language, one per line")
    parser.add_argument("--reverse_run", metavar="RUN", help="a run trained with reverse=true, instead of training one")
    parser.add_argument("--synthetic", metavar="FILE", help="where the synthetic pairs go (default: model_dir/backtranslated/)")
    parser.add_argument("--synthetic_weight", type=float, default=1.0, metavar="W", help="the synthetic pairs' weight (default: 1)")
    parser.add_argument("--tag", default="<bt> ", help="put before every synthetic source (default: '<bt> '; '' for none)")
    return parser


if __name__ == "__main__":
    run_script(parser(), backtranslate)
