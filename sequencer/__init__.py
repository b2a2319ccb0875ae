"""sequencer: config-file driven sequence-to-sequence translation on Keras, by character, word or subword.

`Preprocessor` reads and encodes the training pairs, `Trainer` trains and saves a run folder,
`Predictor` translates with a saved run. TensorFlow is imported on first use of the latter two.
"""

__version__ = "0.4.0"

from sequencer.config import Config, load_config
from sequencer.errors import ConfigError, DataError, SequencerError
from sequencer.preparation import Preprocessor

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "Predictor",
    "Preprocessor",
    "SequencerError",
    "Trainer",
    "load_config",
]


def __getattr__(name):
    if name == "Trainer":
        from sequencer.training import Trainer

        return Trainer
    if name == "Predictor":
        from sequencer.prediction import Predictor

        return Predictor
    raise AttributeError(name)
