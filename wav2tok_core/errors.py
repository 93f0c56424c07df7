"""Every error a user can cause, under one base class.

A :class:`Wav2TokError` means "the input, a file or an option is unusable": its message names the culprit
and the reason in one line. The command line prints it as one line on stderr and exits with code 2
(:func:`wav2tok_core.cli.common.guarded`); anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import pickle


class Wav2TokError(ValueError):
    """Base class of user-facing errors; the message names the culprit and the reason."""


class NotFoundError(Wav2TokError, FileNotFoundError):
    """A file or folder the user named (or the workbench needs) does not exist; the message says where it looked."""


class ConfigError(Wav2TokError):
    """A configuration value is unknown or out of range; the message names the field."""


class AudioError(Wav2TokError):
    """An audio file or array cannot be used; the message names the culprit and the reason."""


class CheckpointError(Wav2TokError):
    """A checkpoint file cannot be used; the message names the file and the reason."""


class ManifestError(Wav2TokError):
    """A manifest file is malformed; the message names the file and the row."""


class DataFormatError(Wav2TokError):
    """A data file has the wrong structure; the message names the file and what was expected."""


class UnsafePickleError(pickle.UnpicklingError, DataFormatError):
    """A pickle asked for something other than plain containers and scalars."""


class SplitError(Wav2TokError):
    """Items cannot be split as asked; the message names the offending field, speaker or file."""


class FolderDatasetError(Wav2TokError):
    """The folder does not have the ``ROOT/<class>/<audio>`` layout; the message names the folder."""


class FsddError(Wav2TokError, RuntimeError):
    """FSDD is missing, incomplete, or its download failed; the message says what to do."""


class IndexFileError(Wav2TokError):
    """An index file is missing, corrupt, of another format or of an unsupported version."""


class InputError(Wav2TokError):
    """A job's inputs name nothing to work on (an empty folder, a split without items)."""


class ShardError(Wav2TokError):
    """Bad shard options; the message names them."""


class EvalError(Wav2TokError):
    """The data cannot be evaluated as asked (e.g. no queries under the protocol, no train clips for a baseline)."""


class NotebookError(Wav2TokError):
    """A notebook of the pipeline failed or timed out; the message names the notebook, the cell and the copy."""
