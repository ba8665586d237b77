"""mkdocs hook (mkdocs.yml `hooks:`): the build's settings are checked once, before any page script.

A bad DIFFUSION_LAB_* value (set by the Makefile's PROFILE, BACKEND, SEED, CACHE_DIR) stops
`mkdocs build` here with one line naming the variable, its value and what is allowed, instead of
a traceback from deep inside a page script.
"""

from mkdocs.exceptions import PluginError

from diffusion_lab.runcache.context import BuildContext, BuildSettingError


def on_config(config):
    try:
        BuildContext.from_env()
    except BuildSettingError as error:
        raise PluginError(str(error)) from None
    return config
