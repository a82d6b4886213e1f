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


def test_the_car_api_is_one_set_of_objects_from_the_root_and_hfevol_car():
    import hfevol
    import hfevol.car

    for name in ("StudentLoss", "ClassifierReward", "JudgeReward", "ProbabilityJudgeReward", "compare", "generate_responses"):
        assert name in hfevol.__all__ and name in hfevol.car.__all__
        assert getattr(hfevol, name) is getattr(hfevol.car, name)


def test_import_hfevol_car_loads_no_model_stack():
    code = "import sys, hfevol.car; print(sorted(m for m in ('torch', 'transformers', 'evaluate', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
