"""actrec-batch: nightly batch recognition of human actions in archived video footage."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("actrec-batch")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"
