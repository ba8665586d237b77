"""B4 and B5 in a profile that leaves flow matching out (`Profile.flow_left_out`): why, and where to see them."""

from diffusion_lab.profiles import get_profile
from diffusion_lab.report.page import Page
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
reason = get_profile(ctx.profile).flow_left_out
for path, title in (("part-b/flow-matching.md", "B4. Flow matching (the course's current Part B)"),
                    ("part-b/ddpm-vs-flow.md", "B5. DDPM or flow matching?")):
    Page(path, title, ctx, section="Part B: diffusion from scratch").text(f"""
!!! warning "Not built in the `{ctx.profile}` profile"
    {reason}
""").save()
