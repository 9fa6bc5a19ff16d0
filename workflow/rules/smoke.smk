"""The smoke target: "does v2v_head work on this cluster?" without any data.

Two synthetic clips are continued end to end with the configured checkpoints (on a GPU where
the configuration asks for one); ``sora-tta smoke`` fails on non-finite latents or a wrong
output shape, and the ``smoke`` rule then re-reads both written clips and checks their frame
count and size.
"""

SMOKE_RUNS = [0, 1]


localrules:
    smoke,


rule smoke_generate:
    """One synthetic continuation (seed = run number)."""
    input:
        mmdit=CKPT.mmdit,
        vae=CKPT.vae,
        t5=CKPT.t5,
        clip=CKPT.clip,
    output:
        f"{SMOKE_DIR}/run{{smoke_run}}.mkv",
    log:
        log_path("smoke_generate", "run{smoke_run}"),
    benchmark:
        benchmark_path("smoke_generate", "run{smoke_run}")
    params:
        ckpt=lambda wildcards, input: os.path.dirname(input.mmdit),
        frames=config["smoke"]["frames"],
        cond=config["smoke"]["cond_frames"],
        height=config["smoke"]["height"],
        width=config["smoke"]["width"],
        steps=config["smoke"]["steps"],
        device=config["generation"]["device"],
        dtype=config["generation"]["dtype"],
    shell:
        "sora-tta smoke --checkpoint-dir {params.ckpt:q} --frames {params.frames}"
        " --cond-frames {params.cond} --height {params.height} --width {params.width}"
        " --steps {params.steps} --seed {wildcards.smoke_run} --device {params.device}"
        " --dtype {params.dtype} --out {output} > {log} 2>&1"


rule smoke:
    """Check both smoke clips: expected frame count and size, not a constant image."""
    input:
        expand(f"{SMOKE_DIR}/run{{smoke_run}}.mkv", smoke_run=SMOKE_RUNS),
    output:
        f"{SMOKE_DIR}/check.json",
    log:
        log_path("smoke"),
    benchmark:
        benchmark_path("smoke")
    params:
        frames=config["smoke"]["frames"],
        height=config["smoke"]["height"],
        width=config["smoke"]["width"],
    shell:
        "sora-tta smoke-check {input} --frames {params.frames} --height {params.height}"
        " --width {params.width} --report {output} > {log} 2>&1"
