"""The ``edgekit`` command line: export, generate, chat, info, verify."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from edgekit.errors import EdgekitError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Qwen3.5 small models as int4 bundles, run on device without torch.")


def _fail(err: EdgekitError) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(2)


@app.command()
def export(
    model: str = typer.Argument(..., help="Hub id (Qwen/Qwen3.5-0.8B), checkpoint folder, or built-in: "
                                          "tiny-random, random-0.8b, random-2b (random weights)."),
    out: Path = typer.Option(..., "-o", "--out", help="Bundle folder to write."),
    format: str = typer.Option("onnx", "--format", help="onnx (ExecuTorch is not available yet)."),
    quant: str = typer.Option("int4", "--quant", help="int4 or fp32 (fp32 is for parity checks)."),
    block_size: int = typer.Option(32, "--block-size", help="int4 block size: 32, 64 or 128."),
    target: str = typer.Option("cpu", "--target", help="cpu, rpi or android: sets context/chunk defaults."),
    max_context: Optional[int] = typer.Option(None, "--max-context", help="Context budget (tokens)."),
    contrib_ops: bool = typer.Option(True, "--contrib-ops/--standard-ops",
                                     help="DeltaNet via onnxruntime contrib ops, or standard ONNX only (slower)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle folder."),
    vision: bool = typer.Option(True, "--vision/--no-vision", help="Include the vision tower (vision.onnx) "
                                "when the checkpoint has one."),
    vision_quant: Optional[str] = typer.Option(None, "--vision-quant", help="Vision tower weights: int8 "
                                               "(default), int4 or fp32 (default with --quant fp32)."),
) -> None:
    """Export a Qwen3.5 checkpoint to a bundle folder."""
    try:
        if format != "onnx":
            raise EdgekitError(f"format {format!r} is not available yet", "use --format onnx")
        from edgekit.export.onnx_export import export_onnx

        bundle = export_onnx(model, out, quant=quant, block_size=block_size, target=target,
                             contrib_ops=contrib_ops, max_context=max_context, overwrite=overwrite,
                             vision=vision, vision_quant=vision_quant)
    except EdgekitError as err:
        _fail(err)
    total = sum(f["bytes"] for f in bundle.manifest["files"].values())
    typer.echo(f"wrote {out} ({total / 2**20:.1f} MiB, {quant}, target {target})")


def _load(bundle: Path, threads: Optional[int], max_context: Optional[int]):
    import edgekit

    return edgekit.load(bundle, threads=threads, max_context=max_context)


def _sampling(temperature, top_k, top_p, repetition_penalty, seed):
    from edgekit.sampling import SamplingParams

    return SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p,
                          repetition_penalty=repetition_penalty, seed=seed)


_T = typer.Option(0.0, "--temperature", help="0 = greedy.")
_K = typer.Option(0, "--top-k", help="0 = off.")
_P = typer.Option(1.0, "--top-p")
_R = typer.Option(1.0, "--repetition-penalty")
_S = typer.Option(None, "--seed")
_THREADS = typer.Option(None, "--threads", help="onnxruntime intra-op threads (default: cores, at most 4).")
_CTX = typer.Option(None, "--max-context", help="Override the bundle's context budget.")
_THINK = typer.Option(False, "--think/--no-think", help="Let the model think first (off by default).")


@app.command()
def generate(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    prompt: str = typer.Option(..., "-p", "--prompt"),
    max_new_tokens: int = typer.Option(128, "-n", "--max-new-tokens"),
    raw: bool = typer.Option(False, "--raw", help="Feed the prompt as is, without the chat template."),
    think: bool = _THINK, temperature: float = _T, top_k: int = _K, top_p: float = _P,
    repetition_penalty: float = _R, seed: Optional[int] = _S,
    threads: Optional[int] = _THREADS, max_context: Optional[int] = _CTX,
    cache_file: Optional[Path] = typer.Option(None, "--cache", help="Prompt cache file (from `edgekit cache "
                                              "save`): a prompt that starts with a cached prefix skips it."),
) -> None:
    """Generate a reply to one prompt, streaming tokens to stdout and speed to stderr."""
    from edgekit.tokenizer import render_chat

    try:
        sampling = _sampling(temperature, top_k, top_p, repetition_penalty, seed)
        model = _load(bundle, threads, max_context)
        cache = _open_cache(model, cache_file)
        text = prompt if raw else render_chat([{"role": "user", "content": prompt}], enable_thinking=think)
        _stream_reply(model, cache, model.tokenizer.encode(text), sampling, max_new_tokens)
    except EdgekitError as err:
        _fail(err)


def _open_cache(model, cache_file: Optional[Path]):
    """The prompt cache: loaded from ``cache_file`` when it exists, else a new in-memory one."""
    from edgekit.runtimes import PromptCache

    if cache_file is not None and cache_file.exists():
        return PromptCache.load(model, cache_file)
    return PromptCache(model)


def _stream_reply(model, cache, prompt_ids, sampling, max_new_tokens, marks=()):
    """Prefill through the cache, stream the reply to stdout and the speed to stderr; return the state."""
    start = time.perf_counter()
    reused = cache.hits
    state, logits = cache.prefill(prompt_ids, marks)
    reused = cache.hits - reused
    _stream(model, state, logits, sampling, max_new_tokens, start,
            f"{len(prompt_ids)} prompt tokens, {reused} reused from the prompt cache")
    return state


def _stream(model, state, logits, sampling, max_new_tokens, start: float, prompt_note: str) -> None:
    """Decode from ``logits``, streaming text to stdout; then the prompt note, TTFT and speed to stderr."""
    stream = model.tokenizer.stream(skip_special=True)
    first = None
    count = 0
    for token in model.decode(state, logits, sampling, max_new_tokens):
        if first is None:
            first = time.perf_counter()
        count += 1
        sys.stdout.write(stream.push(token))
        sys.stdout.flush()
    sys.stdout.write(stream.flush() + "\n")
    end = time.perf_counter()
    ttft = (first or end) - start
    decode = f", decode {(count - 1) / (end - first):.1f} tok/s" if first and count > 1 else ""
    typer.echo(f"[{prompt_note}, TTFT {ttft * 1000:.0f} ms{decode}, context {state.length}/{state.max_context}]",
               err=True)


@app.command()
def describe(
    bundle: Path = typer.Argument(..., help="Bundle folder (exported with its vision tower)."),
    images: list[Path] = typer.Argument(..., help="One or more image files (JPEG, PNG, WebP, BMP)."),
    prompt: str = typer.Option("Describe this image.", "-p", "--prompt"),
    max_new_tokens: int = typer.Option(128, "-n", "--max-new-tokens"),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Resize each image to at most this many "
                                             "pixels (e.g. 200704 = 448x448: 196 tokens); default: the bundle's."),
    think: bool = _THINK, temperature: float = _T, top_k: int = _K, top_p: float = _P,
    repetition_penalty: float = _R, seed: Optional[int] = _S,
    threads: Optional[int] = _THREADS, max_context: Optional[int] = _CTX,
) -> None:
    """Answer a prompt about images, streaming tokens to stdout and timings to stderr."""
    from edgekit.bundle import Bundle
    from edgekit.runtimes.vision import load_image
    from edgekit.runtimes.vision_preprocess import smart_resize
    from edgekit.tokenizer import render_chat

    try:
        sampling = _sampling(temperature, top_k, top_p, repetition_penalty, seed)
        manifest = Bundle.open(bundle).manifest  # cheap checks first: the models load only for valid input
        if "vision" not in manifest["graphs"]:
            raise EdgekitError(f"bundle {bundle} has no vision graph",
                               "re-export it from a checkpoint with a vision tower (without --no-vision)")
        budget = dict(manifest["graphs"]["vision"]["image"])
        if max_pixels is not None:
            if max_pixels < 32 * 32:
                raise EdgekitError(f"--max-pixels {max_pixels} is below one 32x32 patch", "pass at least 1024")
            budget = {"min_pixels": min(budget["min_pixels"], max_pixels), "max_pixels": max_pixels}
        pixels = [load_image(path) for path in images]
        needed = sum(h * w // 1024 + 2 for h, w in (smart_resize(p.shape[0], p.shape[1], **budget) for p in pixels))
        context = max_context or manifest["runtime"]["max_context"]
        if needed > context:
            raise EdgekitError(f"the image{'s' if len(images) > 1 else ''} need {needed} tokens but the context "
                               f"budget is {context}",
                               "pass --max-pixels (e.g. 200704 for 448x448) or a larger --max-context")
        model = _load(bundle, threads, max_context)
        encoder = model.vision
        start = time.perf_counter()
        parts: list = ["<|im_start|>user\n"]
        for image in pixels:
            parts.append(encoder.encode_image(image, **budget))
        encoded = time.perf_counter()
        parts.append(render_chat([{"role": "user", "content": prompt}], enable_thinking=think)
                     .removeprefix("<|im_start|>user\n"))
        state = model.new_state()
        logits = model.prefill_multimodal(state, parts)
        vision_tokens = sum(p.embeds.shape[0] for p in parts[1:-1])
        _stream(model, state, logits, sampling, max_new_tokens, start,
                f"{len(images)} image{'s' if len(images) > 1 else ''} ({vision_tokens} vision tokens, encoded in "
                f"{(encoded - start) * 1000:.0f} ms), {state.length - vision_tokens} text tokens")
    except EdgekitError as err:
        _fail(err)


@app.command()
def chat(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt."),
    max_new_tokens: int = typer.Option(256, "-n", "--max-new-tokens"),
    think: bool = _THINK, temperature: float = _T, top_k: int = _K, top_p: float = _P,
    repetition_penalty: float = _R, seed: Optional[int] = _S,
    threads: Optional[int] = _THREADS, max_context: Optional[int] = _CTX,
    cache_file: Optional[Path] = typer.Option(None, "--cache", help="Keep the prompt cache in this file "
                                              "(loaded at start, saved after every turn)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the latest conversation in --cache."),
) -> None:
    """Chat in the terminal. Each turn resumes from a checkpoint taken after the previous reply, so
    earlier turns are never recomputed; with --cache that survives a restart."""
    from edgekit.tokenizer import render_chat

    try:
        sampling = _sampling(temperature, top_k, top_p, repetition_penalty, seed)
        model = _load(bundle, threads, max_context)
        cache = _open_cache(model, cache_file)
        if resume and cache_file is None:
            raise EdgekitError("--resume needs --cache FILE", "pass the cache file of the conversation to resume")
        latest = cache.latest("turn") if resume else None
        if resume and latest is None:
            raise EdgekitError(f"{cache_file} holds no conversation to resume", "start one without --resume")
        history = list(latest.tokens) if latest else []
        # A resumed conversation ends with a reply whose <|im_end|> was sampled but not folded in.
        pending = "<|im_end|>\n" if latest else ""
        if system and not latest:
            pending = render_chat([{"role": "system", "content": system}], add_generation_prompt=False)
        typer.echo("edgekit chat: empty line or Ctrl-D to quit", err=True)
        while True:
            try:
                line = input("> ")
            except EOFError:
                break
            if not line.strip():
                break
            opening = history + model.tokenizer.encode(pending)  # a system prompt marks a checkpoint of its own
            marks = [(len(opening), "system")] if system and not history else []
            turn = model.tokenizer.encode(render_chat([{"role": "user", "content": line}], enable_thinking=think))
            state = _stream_reply(model, cache, opening + turn, sampling, max_new_tokens, marks)
            cache.add(state, "turn")  # the next turn starts here: nothing of this one is recomputed
            if cache_file is not None:
                cache.save(cache_file)
            history = list(state.tokens)
            pending = "<|im_end|>\n"  # close the reply: its stop token was sampled, not folded in
    except EdgekitError as err:
        _fail(err)


cache_app = typer.Typer(help="Prompt caches: precomputed prefixes saved to a file.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("save")
def cache_save(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    out: Path = typer.Option(..., "-o", "--out", help="Cache file to write (.npz)."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt to precompute."),
    text_file: Optional[Path] = typer.Option(None, "--file", help="A document to precompute as the first "
                                             "user turn's opening; it is closed with a blank line, after "
                                             "which the question follows at run time."),
    threads: Optional[int] = _THREADS, max_context: Optional[int] = _CTX,
) -> None:
    """Precompute a prefix (system prompt, a document) once and save it, e.g. to ship with an app."""
    from edgekit.tokenizer import render_chat

    try:
        if not system and not text_file:
            raise EdgekitError("nothing to precompute", "pass --system TEXT and/or --file DOC")
        model = _load(bundle, threads, max_context)
        text = render_chat([{"role": "system", "content": system}], add_generation_prompt=False) if system else ""
        if text_file:
            # The blank line is a token boundary: the question that follows cannot merge into the
            # document's last token, so the prompt's tokens start with exactly the cached ones.
            text += "<|im_start|>user\n" + text_file.read_text() + "\n\n"
        cache = _open_cache(model, out)
        ids = model.tokenizer.encode(text)
        start = time.perf_counter()
        cache.prefill(ids, marks=[(len(ids), "system")])
        cache.save(out)
    except EdgekitError as err:
        _fail(err)
    typer.echo(f"saved {out}: {len(ids)} tokens precomputed in {time.perf_counter() - start:.1f} s, "
               f"{len(cache)} checkpoints, {cache.nbytes / 2**20:.1f} MiB")


@cache_app.command("info")
def cache_info(
    bundle: Path = typer.Argument(..., help="Bundle folder the cache belongs to."),
    cache_file: Path = typer.Argument(..., help="Cache file."),
) -> None:
    """Load a cache (checksum, bundle match) and list its checkpoints."""
    try:
        model = _load(bundle, 1, None)
        cache = _open_cache(model, cache_file) if cache_file.exists() else None
        if cache is None:
            raise EdgekitError(f"no prompt cache at {cache_file}", "create one with `edgekit cache save`")
    except EdgekitError as err:
        _fail(err)
    typer.echo(f"{cache_file}: bundle {model.bundle.digest}, {len(cache)} checkpoints, {cache.nbytes / 2**20:.1f} MiB")
    for cp in cache.checkpoints:
        typer.echo(f"  {cp.kind:8s} {len(cp.tokens):6d} tokens  {cp.nbytes / 2**20:7.1f} MiB")


@app.command()
def info(bundle: Path = typer.Argument(..., help="Bundle folder.")) -> None:
    """Show what a bundle holds: model, format, quantization, sizes, state and context budget."""
    from edgekit.bundle import Bundle

    try:
        b = Bundle.open(bundle)
    except EdgekitError as err:
        _fail(err)
    m, cfg = b.manifest, b.text_config
    shapes = cfg.state_shapes()
    fixed = 4 * len(cfg.deltanet_layers) * (math.prod(shapes["conv"]) + math.prod(shapes["recurrent"]))
    per_token = 4 * 2 * len(cfg.attention_layers) * math.prod(shapes["kv_row"])
    typer.echo(f"bundle      {b.path}  (format {m['format_version']}, {m['created_by']}, id {b.digest})")
    typer.echo(f"model       {m['source']['model']}  hidden {cfg.hidden_size}, {cfg.num_layers} layers "
               f"({len(cfg.deltanet_layers)} DeltaNet + {len(cfg.attention_layers)} attention), vocab {cfg.vocab_size}")
    typer.echo(f"backend     {m['backend']}, target {m['target']}, DeltaNet ops: {m['graphs']['decoder']['deltanet']}")
    typer.echo(f"weights     {m['quantization']['weights']}"
               + (f", block {m['quantization']['block_size']}" if m['quantization']['weights'] == 'int4' else ""))
    if "vision" in m["graphs"]:
        v = m["graphs"]["vision"]
        typer.echo(f"vision      {v['weights']} weights, patch {v['patch_size']} x {v['temporal_patch_size']} frames, "
                   f"one token per {v['patch_size'] * v['merge_size']}x{v['patch_size'] * v['merge_size']} pixels")
    typer.echo(f"state       {fixed / 2**20:.2f} MiB fixed (DeltaNet) + {per_token / 1024:.1f} KiB per token (KV)")
    typer.echo(f"context     {m['runtime']['max_context']} tokens, prefill chunk {m['runtime']['chunk_size']}")
    typer.echo(f"eos ids     {m['tokenizer']['eos_ids']}, chat template {m['tokenizer']['chat_template']}")
    for name, f in m["files"].items():
        typer.echo(f"file        {name:24s} {f['bytes'] / 2**20:9.1f} MiB  sha256 {f['sha256'][:12]}")


@app.command()
def verify(bundle: Path = typer.Argument(..., help="Bundle folder.")) -> None:
    """Check checksums, the graph's opset, and that the graph's state matches the config."""
    from edgekit.bundle import Bundle

    try:
        b = Bundle.open(bundle)
        problems = b.verify_files()
        if not problems:
            from edgekit.runtimes.onnx_decoder import OnnxDecoder

            OnnxDecoder(b, threads=1, max_context=1)  # loads the graph (opset) and checks its state I/O
            if "vision" in b.manifest["graphs"]:
                from edgekit.runtimes.vision import VisionEncoder

                VisionEncoder(b, threads=1)  # loads vision.onnx and checks its inputs against the manifest
    except EdgekitError as err:
        _fail(err)
    if problems:
        for p in problems:
            typer.echo(f"FAIL {p}", err=True)
        raise typer.Exit(1)
    graphs = " and ".join(b.manifest["graphs"])
    typer.echo(f"ok: {len(b.manifest['files'])} files match their checksums; graphs load ({graphs}); "
               "state matches the config")


@app.command()
def profile(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    out: Path = typer.Option(Path("profile"), "-o", "--out", help="Folder for profile.json/.md/.html."),
    pp: int = typer.Option(128, "--pp", help="Prompt tokens per prefill measurement."),
    tg: int = typer.Option(64, "--tg", help="Decode steps per measurement."),
    depth: int = typer.Option(512, "--depth", help="Context present for the decode-at-depth measurement."),
    reps: int = typer.Option(3, "--reps", help="Repetitions after one warm-up."),
    threads: Optional[int] = _THREADS,
    energy: str = typer.Option("auto", "--energy", help="auto (RAPL, battery, Pi 5 PMIC) or none."),
    soak: Optional[str] = typer.Option(None, "--soak", help="Thermal soak after the protocol: 90s, 10m, 1h."),
    battery_wh: Optional[float] = typer.Option(None, "--battery-wh", help="Battery capacity (Wh): report the "
                                               "battery %/hour the model costs (needs an energy source)."),
    duty_cycle: float = typer.Option(0.1, "--duty-cycle", help="Fraction of the hour spent decoding."),
) -> None:
    """Measure a bundle on this device: speed, latency, memory, op breakdown, energy; report as JSON/MD/HTML."""
    from rich.console import Console

    from edgekit.profile_report import to_markdown, write_reports
    from edgekit.profiling import ProfileSettings, run_profile

    try:
        if min(pp, tg, reps) < 1 or depth < 0:
            raise EdgekitError("--pp, --tg and --reps must be at least 1 and --depth at least 0", "fix the option")
        if energy not in ("auto", "none"):
            raise EdgekitError(f"unknown energy source {energy!r}", "use --energy auto or --energy none")
        console = Console(stderr=True)
        if battery_wh is not None and battery_wh <= 0 or not 0 <= duty_cycle <= 1:
            raise EdgekitError("--battery-wh must be above 0 and --duty-cycle between 0 and 1", "fix the option")
        settings = ProfileSettings(pp=pp, tg=tg, depth=depth, reps=reps, threads=threads,
                                   soak_s=parse_duration(soak) if soak else 0.0, battery_wh=battery_wh,
                                   duty_cycle=duty_cycle)
        with console.status("profiling") as status:
            result = run_profile(bundle, settings,
                                 energy="auto" if energy == "auto" else None,
                                 progress=lambda step: status.update(f"profiling: {step}"))
        files = write_reports(result, out)
    except EdgekitError as err:
        _fail(err)
    typer.echo(to_markdown(result))
    typer.echo("wrote " + ", ".join(str(f) for f in files), err=True)


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``10m`` or ``1h``."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise EdgekitError(f"cannot read the duration {text!r}", "write it like 90s, 10m or 1h")
    return seconds


@app.command("profile-compare")
def profile_compare(a: Path = typer.Argument(..., help="profile.json"), b: Path = typer.Argument(..., help="profile.json")) -> None:
    """Compare two profile.json files (means, and the ratio b / a)."""
    import json

    from edgekit.profile_report import compare

    try:
        results = []
        for path in (a, b):
            try:
                results.append(json.loads(path.read_text()))
            except (OSError, ValueError) as err:
                raise EdgekitError(f"cannot read profile {path} ({type(err).__name__})",
                                   "pass profile.json files written by `edgekit profile`") from None
    except EdgekitError as err:
        _fail(err)
    typer.echo(compare(*results, names=(str(a), str(b))))


def main() -> None:
    app()
