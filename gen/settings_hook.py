"""mkdocs hook (mkdocs.yml `hooks:`): the build's settings are checked once, before any page script.

A bad DIFFUSION_LAB_* value (set by the Makefile's PROFILE, BACKEND, SEED, CACHE_DIR) stops
`mkdocs build` here with one line naming the variable, its value and what is allowed, instead of
a traceback from deep inside a page script. With BACKEND=deepfloyd the DIFFUSION_LAB_IF_* settings
are checked too, weights first: missing weights stop the build before any work.
Before the page scripts run, Part B's expensive runs that are not cached are computed side by side
(`experiments.prefetch`: worker processes and threads by the cores this process may use).
"""

from mkdocs.exceptions import PluginError

from diffusion_lab.experiments.prefetch import prefetch
from diffusion_lab.runcache.context import BuildContext, BuildSettingError


def on_config(config):
    try:
        ctx = BuildContext.from_env()
    except BuildSettingError as error:
        raise PluginError(str(error)) from None
    if ctx.backend == "deepfloyd":
        from diffusion_lab.backends.deepfloyd import DeepFloydSettings, WeightsUnavailable, check_settings

        try:
            check_settings(DeepFloydSettings.from_env())
        except (WeightsUnavailable, ValueError) as error:
            raise PluginError(f"BACKEND=deepfloyd cannot run: {error}") from None
    return config


def on_pre_build(config):
    ctx = BuildContext.from_env()
    prefetch(ctx)
