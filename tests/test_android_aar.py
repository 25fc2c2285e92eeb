"""android_demo/verify_aar.sh on fabricated AAR-shaped zips: a classes.jar compiled from the ExecuTorch API
declarations (android_demo/executorch-api) and a fake jni/arm64-v8a/libexecutorch.so holding kernel names as
strings, as the real library holds its registration names. The bundle is tests/vectors' executorch example,
whose required_ops test_vectors.py keeps equal to the exporter's. Needs a JDK, unzip, strings and kotlinc
(see android_tools.py); kotlinc runs five times, ~2 min of CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from android_tools import ANDROID_DEMO, KOTLINC, require_android_tools

VERIFY = ANDROID_DEMO / "verify_aar.sh"
VECTORS = Path(__file__).parent / "vectors" / "manifest.json"
KERNELS = ["aten::add.out", "aten::mm.out", "llama::custom_sdpa.out", "llama::update_cache.out",
           "llama::gated_delta_rule.out", "quantized_decomposed::embedding_4bit.out"]
# Other strings a real libexecutorch.so holds next to them: a profiler label, log formats, a path.
NOISE = ["native_call_llama::gated_delta_rule.out", "Expected %zu args, got %zu", "Failed to load method: %s",
         "/data/local/tmp/result.etdump"]


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(VERIFY), *map(str, args)], capture_output=True, text=True, timeout=1200)


def fake_so(path: Path, names: list[str]) -> None:
    """An ELF-headed file whose bytes hold NUL-terminated strings, as a .so's read-only data does."""
    path.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(57) + b"".join(n.encode() + b"\0" for n in names) + bytes(64))


def fake_aar(path: Path, classes_jar: Path | None, kernels: list[str] | None) -> Path:
    with zipfile.ZipFile(path, "w") as aar:
        aar.writestr("AndroidManifest.xml", '<manifest package="org.pytorch.executorch"/>')
        if classes_jar is not None:
            aar.write(classes_jar, "classes.jar")
        if kernels is not None:
            fake_so(path.parent / "lib.so", kernels + NOISE)
            aar.write(path.parent / "lib.so", "jni/arm64-v8a/libexecutorch.so")
    return path


def compile_api(src: Path, out: Path) -> Path:
    subprocess.run([str(KOTLINC), "-nowarn", str(src), "-d", str(out)], check=True, capture_output=True, timeout=900)
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    require_android_tools(("unzip", "unzip"), ("strings", "strings (binutils)"))
    if not KOTLINC.is_file():  # check.sh installs the tools; this test may run first
        subprocess.run(["bash", "-c", ". ./kotlin-tools.sh && kotlin_tools"], cwd=ANDROID_DEMO, check=True, timeout=900)
    work = tmp_path_factory.mktemp("aar")
    example = json.loads(VECTORS.read_text())["cases"][0]["manifest"]
    assert example["backend"] == "executorch"
    (work / "bundle").mkdir()
    (work / "bundle" / "manifest.json").write_text(json.dumps(example))
    return work


def without(jar: Path, prefix: str) -> Path:
    """The jar with the entries under ``prefix`` left out."""
    slim = jar.with_name("slim-" + jar.name)
    with zipfile.ZipFile(jar) as full, zipfile.ZipFile(slim, "w") as out:
        for entry in full.infolist():
            if not entry.filename.startswith(prefix):
                out.writestr(entry, full.read(entry))
    return slim


def test_an_aar_with_the_kernels_and_the_api_passes(work):
    # Like the real classes.jar, Module keeps fbjni's HybridData in a private field, and fbjni is not in
    # the AAR: the app's code must compile without it.
    api = work / "api"
    shutil.copytree(ANDROID_DEMO / "executorch-api", api)
    (api / "HybridData.kt").write_text("package com.facebook.jni\n\nclass HybridData\n")
    module_kt = api / "org" / "pytorch" / "executorch" / "ExecuTorch.kt"
    head = "open class Module private constructor() : Closeable {\n"
    assert head in module_kt.read_text()
    module_kt.write_text(module_kt.read_text().replace(head, head + "    private val mHybridData: com.facebook.jni.HybridData? = null\n"))
    full = compile_api(api, work / "api.jar")
    jar = without(full, "com/facebook/")
    assert "com/facebook/jni/HybridData.class" in zipfile.ZipFile(full).namelist()
    result = run(fake_aar(work / "good.aar", jar, KERNELS), work / "bundle")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    listed = result.stdout.split("== the bundle's required_ops")[0]
    assert [line.strip() for line in listed.splitlines()[1:-1]] == sorted(KERNELS)  # no noise listed
    required = json.loads((work / "bundle" / "manifest.json").read_text())["required_ops"]
    for op in required:
        assert f"ok      {op}" in result.stdout
    assert f"all {len(required)} required ops are registered" in result.stdout
    assert result.stdout.rstrip().endswith("verify_aar.sh: all passed")


def test_a_missing_kernel_and_a_function_turned_property_both_fail(work):
    # An API where Module.getMethods() were a property: the app, which calls the function, must not compile.
    api = work / "wrong-api"
    shutil.copytree(ANDROID_DEMO / "executorch-api", api)
    module_kt = api / "org" / "pytorch" / "executorch" / "ExecuTorch.kt"
    text = module_kt.read_text()
    assert "open fun getMethods(): Array<String> = declared()" in text
    module_kt.write_text(text.replace("open fun getMethods(): Array<String> = declared()",
                                      "open val methods: Array<String> get() = declared()"))
    jar = compile_api(api, work / "wrong-api.jar")
    kernels = [k for k in KERNELS if k != "llama::gated_delta_rule.out"]
    result = run(fake_aar(work / "bad.aar", jar, kernels), work / "bundle")
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-4000:]
    assert "MISSING llama::gated_delta_rule" in result.stdout
    assert "lacks llama::gated_delta_rule that the bundle needs" in result.stdout
    assert "getMethods" in result.stderr + result.stdout  # kotlinc names the call that no longer resolves
    assert result.stdout.rstrip().endswith("verify_aar.sh: failed: required_ops compile")


def test_bad_input_gets_one_line(work):
    (work / "not-a-zip.aar").write_text("hello")
    no_jni = fake_aar(work / "no-jni.aar", None, None)
    with zipfile.ZipFile(no_jni, "a") as aar:
        aar.writestr("classes.jar", b"")
    cases = [((work / "not-a-zip.aar", work / "bundle"), "is not an AAR (not a zip file)"),
             ((no_jni, work / "bundle"), "has no jni/arm64-v8a/*.so"),
             ((fake_aar(work / "no-classes.aar", None, KERNELS), work / "bundle"), "has no classes.jar"),
             ((no_jni, work), "has no manifest.json"),
             ((work / "absent.aar", work / "bundle"), "no such file")]
    for args, message in cases:
        result = run(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
