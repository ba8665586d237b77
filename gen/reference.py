"""Reference: every module of the algorithms, backends, MNIST code and experiments, rendered by
mkdocstrings from its docstrings; each entry links to its definition in the code behind the figures."""

from diffusion_lab.report.page import save_reference_pages
from diffusion_lab.runcache.runs import BUILD_LOG

save_reference_pages(BUILD_LOG, section="Reference")
