rule figures:
    """Per experiment: the landscape panel and the box-counting diagnostic."""
    input:
        scores=frame0(SCORES),
        dimension=DIMENSION,
    output:
        landscape_pdf=LANDSCAPE_PDF,
        landscape_png=report(
            LANDSCAPE_PNG,
            caption="../report/landscape.rst",
            category="Landscapes",
            labels={"experiment": "{experiment}", "figure": "landscape"},
        ),
        boxcount_pdf=BOXCOUNT_PDF,
        boxcount_png=report(
            BOXCOUNT_PNG,
            caption="../report/boxcount.rst",
            category="Box counting",
            labels={"experiment": "{experiment}", "figure": "box counting"},
        ),
    log:
        "logs/{experiment}/figures.log",
    conda:
        "../../envs/trainability.yaml"
    resources:
        mem_mb=frame_mem_mb,
        runtime=frame_runtime,
    params:
        panel=experiment_panel,
    script:
        "../scripts/figures.py"


rule six_panel:
    """All summary experiments in the layout of the paper's Figure 1."""
    input:
        scores=expand(SCORES, experiment=SUMMARY, frame=0),
        dimensions=expand(DIMENSION, experiment=SUMMARY),
    output:
        pdf=SIX_PANEL_PDF,
        png=report(
            SIX_PANEL_PNG,
            caption="../report/six_panel.rst",
            category="Summary",
            labels={"figure": "six panels"},
        ),
    log:
        "logs/summary/six_panel.log",
    conda:
        "../../envs/trainability.yaml"
    params:
        panels=[panel_params(name) for name in SUMMARY],
    script:
        "../scripts/six_panel.py"


rule dimension_table:
    """Our fractal dimensions beside the paper's."""
    input:
        dimensions=expand(DIMENSION, experiment=SUMMARY),
        uncertainty=list(summary_estimates("uncertainty").values()),
        lines=list(summary_estimates("line").values()),
    output:
        csv=DIMENSION_TABLE_CSV,
        md=report(
            DIMENSION_TABLE_MD,
            caption="../report/dimension_table.rst",
            category="Summary",
            labels={"figure": "dimension table"},
        ),
    log:
        "logs/summary/dimension_table.log",
    conda:
        "../../envs/trainability.yaml"
    params:
        panels=[panel_params(name) for name in SUMMARY],
        uncertainty=summary_estimates("uncertainty"),
        lines=summary_estimates("line"),
    script:
        "../scripts/dimension_table.py"
