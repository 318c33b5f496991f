# ---------------------------------------------------------------------------
# Zoom sequences (experiments with zoom.frames > 1): every frame as a picture at
# native resolution and as a panel, a strip of frames, the video, and the
# dimension of each frame against its depth.
# Code: trainability/figures/zoom.py, trainability/figures/video.py.
# ---------------------------------------------------------------------------


rule frame_images:
    """One frame at native resolution (the paper's colours, no axes) and as a panel."""
    input:
        SCORES,
    output:
        image=FRAME_IMAGE,
        panel=report(
            FRAME_PANEL,
            caption="../report/frame.rst",
            category="Zoom frames",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "frame": "{frame}"},
        ),
    log:
        "logs/{experiment}/frame{frame}/images.log",
    conda:
        "../../envs/trainability.yaml"
    resources:
        mem_mb=frame_mem_mb,
        runtime=frame_runtime,
    params:
        frame=frame_params,
    script:
        "../scripts/frame_images.py"


rule zoom_strip:
    """Eight frames of a sequence side by side, each with its depth."""
    input:
        frames=lambda wc: frame_images(wc.experiment),
    output:
        pdf=ZOOM_STRIP_PDF,
        png=report(
            ZOOM_STRIP_PNG,
            caption="../report/zoom_strip.rst",
            category="Zoom sequences",
            labels={"experiment": "{experiment}", "figure": "zoom strip"},
        ),
    log:
        "logs/{experiment}/zoom_strip.log",
    conda:
        "../../envs/trainability.yaml"
    resources:
        mem_mb=frame_mem_mb,
        runtime=sequence_runtime,
    params:
        title=lambda wc: experiment_named(wc.experiment)["title"],
        depths=lambda wc: sequence_params(wc)["decades"],
    script:
        "../scripts/zoom_strip.py"


rule dimension_depth:
    """Each frame's box-counting dimension against its depth: fractal over how many decades."""
    input:
        dimension=DIMENSION,
    output:
        pdf=DIMENSION_DEPTH_PDF,
        png=report(
            DIMENSION_DEPTH_PNG,
            caption="../report/dimension_depth.rst",
            category="Zoom sequences",
            labels={"experiment": "{experiment}", "figure": "dimension vs depth"},
        ),
    log:
        "logs/{experiment}/dimension_depth.log",
    conda:
        "../../envs/trainability.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        title=lambda wc: experiment_named(wc.experiment)["title"],
        paper_dimension=lambda wc: experiment_named(wc.experiment)["paper_dimension"],
        resolution=lambda wc: experiment_named(wc.experiment)["grid"]["resolution"],
        float64_limit=lambda wc: float64_limit(experiment_named(wc.experiment)),
    script:
        "../scripts/dimension_depth.py"


rule video:
    """The zoom as an MP4 (H.264, 30 fps, 1.5 s per 2x), in-between frames from stacked keyframes
    coloured on one scale for the whole sequence, each fading in over the one below."""
    input:
        scores=score_files,
    output:
        video=report(
            ZOOM_VIDEO,
            caption="../report/video.rst",
            category="Zoom sequences",
            labels={"experiment": "{experiment}", "figure": "video"},
        ),
    log:
        "logs/{experiment}/video.log",
    conda:
        "../../envs/trainability.yaml"
    threads: 2
    resources:
        mem_mb=frame_mem_mb,
        runtime=sequence_runtime,
    params:
        factor=lambda wc: experiment_named(wc.experiment)["zoom"]["factor"],
        measure=label_measure,
    script:
        "../scripts/video.py"
