import subprocess
import sys


def test_import_hfevol_loads_no_heavy_dependency():
    code = "import sys, hfevol; print(sorted(m for m in ('torch', 'transformers', 'datasets', 'evaluate', 'jinja2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    assert out == "[]"


def test_lazy_names_resolve():
    import hfevol

    assert hfevol.EvolInstruct.__name__ == "EvolInstruct"
    assert "EvolInstruct" in dir(hfevol)
