# Trainability landscapes and the fractal dimension of their boundary
# (Sohl-Dickstein 2024, arXiv:2402.06184).
#
# results/{experiment}/centre.json                          automatic zoom centre (centre: auto)
# results/{experiment}/frame{frame}/shards/shard{shard}.h5  per-pixel loss statistics
# results/{experiment}/frame{frame}/grid.h5                 merged frame + provenance
# results/{experiment}/frame{frame}/scores.h5               convergence measures
# results/{experiment}/dimension.json                       box-counting dimension
# results/{experiment}/{uncertainty,line_dimension}.json    the other estimators, where asked for
# results/{experiment}/figures/{landscape,boxcount}.{pdf,png}
# results/{experiment}/frame{frame}/{landscape,panel}.png     zoom sequences: each frame,
# results/{experiment}/figures/{zoom_strip,dimension_vs_depth}.{pdf,png}, zoom.mp4
# results/summary/{six_panel.pdf,six_panel.png,dimension_table.csv,dimension_table.md}
# logs/ mirrors these paths. Code takes them from the templates in workflow/rules/common.smk.

from snakemake.utils import min_version

min_version("9.1")


# A --configfile defines the experiments that run: the defaults load only without
# one (a config builds on them with `base: config/config.yaml`, see config/README.md).
# Jobs get the same --configfiles from Snakemake, so they see the same experiments.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/checks.smk"
include: "workflow/rules/centre.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/merge.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/dimension.smk"
include: "workflow/rules/estimators.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/sequence.smk"
include: "workflow/rules/archive.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
