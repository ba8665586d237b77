"""mkdocs hook (mkdocs.yml `hooks:`): the build's settings are checked once, before any page script.

A bad DIFFUSION_LAB_* value (set by the Makefile's PROFILE, BACKEND, SEED, CACHE_DIR) stops
`mkdocs build` here with one line naming the variable, its value and what is allowed, instead of
a traceback from deep inside a page script. With BACKEND=deepfloyd the DIFFUSION_LAB_IF_* settings
are checked too, weights first: missing weights stop the build before any work. A profile that
leaves flow matching out (`Profile.flow_left_out`) gets the pages that say why instead of B4 and B5.
"""

from pathlib import Path

from mkdocs.exceptions import PluginError

from diffusion_lab.profiles import get_profile
from diffusion_lab.runcache.context import BuildContext, BuildSettingError

FLOW_SCRIPTS = ("gen/part_b_flow.py", "gen/part_b_compare.py")
FLOW_LEFT_OUT_SCRIPT = "gen/flow_left_out.py"


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
    if get_profile(ctx.profile).flow_left_out is not None:
        # gen-files holds its scripts as validated, absolute paths.
        root = Path(config.config_file_path).parent
        scripts = [Path(script).resolve() for script in config.plugins["gen-files"].config["scripts"]]
        flow = [(root / script).resolve() for script in FLOW_SCRIPTS]
        kept = [str(script) for script in scripts if script not in flow]
        kept.insert(scripts.index(flow[0]), str(root / FLOW_LEFT_OUT_SCRIPT))
        config.plugins["gen-files"].config["scripts"] = kept
    return config
