"""The one typed, frozen configuration of actrec-batch.

Precedence, highest first: command-line flag, ``ACTREC_*`` environment variable, YAML config file
(``--config FILE`` or ``ACTREC_CONFIG``), built-in default.

Each setting is declared once, as a field of :class:`Settings` (``config/settings.py``): name,
type, default, group, help, validation and fix. The loader, the CLI's flags, ``actrec config``,
the errors and the README's settings table (:func:`settings_reference_markdown`) come from there.
Every value is validated once, here, at the edge. A bad value raises :class:`ConfigError` whose
one-line message names the setting (flag, env var and file key) and the fix. Secrets (passwords
inside URLs) never appear in ``repr`` or in ``redacted()``.
"""

from actrec_batch.config._load import (
    load_settings,
    logical_date_range,
    parse_logical_date,
    replace,
    setting_error,
)
from actrec_batch.config._parse import redact_url
from actrec_batch.config.reference import settings_reference_markdown
from actrec_batch.config.settings import (
    CONTENT_ID_METHODS,
    GROUPS,
    LOG_LEVELS,
    RUNNERS,
    SETTING_NAMES,
    SETTINGS,
    Settings,
    Spec,
)

__all__ = [
    "CONTENT_ID_METHODS",
    "GROUPS",
    "LOG_LEVELS",
    "RUNNERS",
    "SETTINGS",
    "SETTING_NAMES",
    "Settings",
    "Spec",
    "load_settings",
    "logical_date_range",
    "parse_logical_date",
    "redact_url",
    "replace",
    "setting_error",
    "settings_reference_markdown",
]
