"""Inputs: (synthetic) UCF-101, (tiny) checkpoints, the manifest and the ground-truth clips."""

if DATA.synthetic_out:

    rule make_synthetic_ucf101:
        """Synthetic UCF-101 stand-in (demo): videos, split lists and broken cases; the
        procedural world (with its captions) when data.synthetic.world is set."""
        output:
            directory(DATA.synthetic_out),
        log:
            log_path("make_synthetic_ucf101"),
        benchmark:
            benchmark_path("make_synthetic_ucf101")
        params:
            args=lambda wildcards, output: options.synthetic_data_args(
                config, output[0]
            ),
        shell:
            "sora-tta {params.args} > {log} 2>&1"


if BUILT_CHECKPOINTS == "tiny":

    rule make_tiny_checkpoints:
        """Tiny seeded checkpoint family in the official layout (tests)."""
        output:
            mmdit=CKPT.mmdit,
            vae=CKPT.vae,
            t5=directory(CKPT.t5),
            clip=directory(CKPT.clip),
            family=f"{CKPT.root}/{layout.TINY_FAMILY_FILE}",
        log:
            log_path("make_tiny_checkpoints"),
        benchmark:
            benchmark_path("make_tiny_checkpoints")
        params:
            root=lambda wildcards, output: os.path.dirname(output.mmdit),
            seed=config["checkpoints"]["tiny"]["seed"],
        shell:
            "sora-tta make-tiny-checkpoints {params.root:q} --seed {params.seed} > {log} 2>&1"


if BUILT_CHECKPOINTS == "proxy":

    rule proxy_checkpoints:
        """The committed proxy checkpoints (pretrained on the procedural world; demo),
        copied into checkpoints.dir after a SHA-256 check."""
        output:
            mmdit=CKPT.mmdit,
            vae=CKPT.vae,
            t5=directory(CKPT.t5),
            clip=directory(CKPT.clip),
            description=f"{CKPT.root}/{PROXY_FILE}",
        log:
            log_path("proxy_checkpoints"),
        benchmark:
            benchmark_path("proxy_checkpoints")
        params:
            root=lambda wildcards, output: os.path.dirname(output.mmdit),
        shell:
            "sora-tta proxy-checkpoints {params.root:q} > {log} 2>&1"


checkpoint manifest:
    """Select, caption and probe the videos; unusable ones become rows with a status."""
    input:
        unpack(manifest_inputs),
    output:
        csv=MANIFEST,
    log:
        log_path("manifest"),
    benchmark:
        benchmark_path("manifest")
    params:
        ucf_root=DATA.ucf_root,
        splits_dir=DATA.splits_dir,
        split=config["selection"]["split"],
        subset=config["selection"]["subset"],
        seed=config["selection"]["seed"],
        # a function: the template's {action} must not be read as a wildcard
        template=lambda wildcards: config["selection"]["caption_template"],
        start=config["selection"]["start_frame"],
        frames=config["sampling"]["num_frames"],
        size=config["selection"]["expected_size"],
        options=options.manifest_options(config),
    shell:
        "sora-tta manifest --ucf-root {params.ucf_root:q} --splits-dir {params.splits_dir:q}"
        " --split {params.split} --subset {params.subset} --seed {params.seed}"
        " --caption-template {params.template:q} --start-frame {params.start}"
        " --num-frames {params.frames} --expected-size {params.size} {params.options}"
        " --jobs {threads} --out {output.csv} > {log} 2>&1"


# The manifest (checkpoint) says which videos get a clip and where their source is; it is
# not an input itself, so a rebuilt manifest reruns only the clips whose source changed.
# (Declaring it ancient() would not do: Snakemake 9 then ignores its updates for every other
# rule that reads it, e.g. the aggregate.)
rule preprocess:
    """One lossless ground-truth clip per usable video (cut, resize to cover, center-crop)."""
    input:
        video=source_video,
    output:
        clip=CLIP,
        sidecar=CLIP_SIDECAR,
    log:
        log_path("preprocess", "{video}"),
    benchmark:
        benchmark_path("preprocess", "{video}")
    params:
        options=options.preprocess_options(config),
    shell:
        "sora-tta preprocess --input {input.video:q} --output {output.clip}"
        " --sidecar {output.sidecar} {params.options} > {log} 2>&1"
