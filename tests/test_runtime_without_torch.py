"""The device side must import and generate with torch, transformers and tokenizers absent."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('torch', 'transformers', 'tokenizers', 'onnx', 'onnxscript', 'PIL'):
                raise ImportError(f'{name} is blocked: the runtime must not need it')
    sys.meta_path.insert(0, Block())
""")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


def test_runtime_generates_with_torch_blocked(int4_bundle):
    proc = _run(f"""
        import edgekit, edgekit.runtimes, edgekit.cli
        from edgekit.tokenizer import render_chat
        from edgekit.sampling import SamplingParams
        model = edgekit.load({str(int4_bundle)!r})
        ids = model.tokenizer.encode(render_chat([{{"role": "user", "content": "hi"}}]))
        out = list(model.generate(ids, sampling=SamplingParams(temperature=0.7, top_k=20, seed=3),
                                  max_new_tokens=5, stop_ids=[]))
        assert len(out) == 5, out
        assert 'torch' not in sys.modules and 'transformers' not in sys.modules
        print('OK', out)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("OK")


def test_cli_generate_with_torch_blocked(int4_bundle):
    proc = _run(f"""
        import sys
        from edgekit.cli import app
        sys.argv = ['edgekit', 'generate', {str(int4_bundle)!r}, '-p', 'hello', '-n', '3']
        try:
            app()
        except SystemExit as e:
            assert e.code in (0, None), e.code
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "prompt tokens" in proc.stderr


def test_vision_path_with_torch_blocked(int4_bundle, tmp_path):
    """Image file -> preprocessing -> vision tower -> multimodal prefill -> tokens, with no torch anywhere."""
    import cv2
    import numpy as np

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), (np.random.default_rng(0).random((100, 150, 3)) * 255).astype(np.uint8))
    proc = _run(f"""
        import edgekit
        from edgekit.runtimes import frame_pairs
        from edgekit.runtimes.vision import load_image
        model = edgekit.load({str(int4_bundle)!r})
        rgb = load_image({str(image)!r})
        photo = model.vision.encode_image(rgb, min_pixels=1024, max_pixels=64 * 64)
        pairs = frame_pairs(model.vision.encode_frames([rgb] * 3, size=(64, 96)), [0.0, 0.5, 1.0])
        state = model.new_state()
        logits = model.prefill_multimodal(state, ["<|im_start|>user\\n", photo, *pairs, "What is it?"])
        out = list(model.decode(state, logits, max_new_tokens=3, stop_ids=[]))
        assert len(out) == 3 and state.next_position < state.length, (out, state.meta_state)
        assert 'torch' not in sys.modules and 'transformers' not in sys.modules and 'PIL' not in sys.modules
        print('OK', out)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("OK")
