"""bench.modes on CPU: what each mode does to the model and input."""

import torch

from bench.core import modes
from bench.core.case import Case


def case(**kw):
    d = dict(model="resnet18", workload="infer", batch_size=2, image_size=32, layout="contiguous",
             precision="fp32", compile="none", device="cpu")
    d.update(kw)
    return Case(**d)


def test_channels_last_converts_input_and_weights():
    import resnet_impl

    c = case(layout="channels_last")
    x, y = modes.make_inputs(c, 10)
    assert x.is_contiguous(memory_format=torch.channels_last) and x.shape == (2, 3, 32, 32)
    model = resnet_impl.create_model("resnet18", num_classes=10)
    p = modes.prepare(model, c, x, y)
    assert p.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert p.step().shape == (2, 10)


def test_inputs_are_deterministic():
    a, _ = modes.make_inputs(case(), 10)
    b, _ = modes.make_inputs(case(layout="channels_last"), 10)
    assert torch.equal(a, b.contiguous())


def test_bf16_autocast_runs_in_bf16_on_cpu():
    c = case(precision="bf16")
    lin = torch.nn.Linear(4, 4)
    with modes.autocast(c):
        assert lin(torch.ones(1, 4)).dtype == torch.bfloat16


def test_precision_context_restores_tf32_flags():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with modes.precision_context(case(device="cuda", precision="tf32")):
        pass
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_train_step_updates_weights_and_returns_loss():
    import resnet_impl

    c = case(workload="train")
    x, y = modes.make_inputs(c, 10)
    model = resnet_impl.create_model("resnet18", num_classes=10)
    w0 = model.fc.weight.detach().clone()
    loss = modes.prepare(model, c, x, y).step()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert not torch.equal(model.fc.weight, w0)


def test_max_diff_is_relative_to_the_reference_scale():
    ref = torch.tensor([10.0, -20.0])
    a, r = modes.max_diff(ref + torch.tensor([0.0, 0.2]), ref)
    assert abs(a - 0.2) < 1e-6 and abs(r - 0.01) < 1e-6


def test_inputs_are_drawn_on_the_device_with_its_generator(monkeypatch):
    seen = []
    real_randn, real_randint = torch.randn, torch.randint

    def spy(real, name):
        def f(*a, **k):
            seen.append((name, str(k.get("device")), k["generator"].device.type))
            return real(*a, **k)
        return f

    monkeypatch.setattr(torch, "randn", spy(real_randn, "randn"))
    monkeypatch.setattr(torch, "randint", spy(real_randint, "randint"))
    x, y = modes.make_inputs(case(), 10)
    assert seen == [("randn", "cpu", "cpu"), ("randint", "cpu", "cpu")]  # no host tensor copied over
    assert x.device.type == y.device.type == "cpu"


def test_a_training_step_marks_its_phases_in_order():
    import resnet_impl

    from bench.core.oom import Phase

    class Spy(Phase):
        __slots__ = ("seen",)

        def set(self, name):
            self.seen.append(name)
            super().set(name)

    phase = Spy()
    phase.seen = []
    c = case(workload="train")
    x, y = modes.make_inputs(c, 10)
    modes.prepare(resnet_impl.create_model("resnet18", num_classes=10), c, x, y, phase=phase).step()
    assert phase.seen == ["forward", "backward", "optimizer"] and phase.now == "optimizer"


def test_compiler_failures_are_told_apart_from_runtime_ooms():
    from torch._dynamo.exc import BackendCompilerFailed

    from bench.core.oom import Phase, phase_of

    p = Phase()
    p.set("backward")
    oom = torch.OutOfMemoryError("CUDA out of memory")
    assert phase_of(oom, p) == "backward"
    assert phase_of(BackendCompilerFailed(lambda *a: None, oom, None), p) == "compile"
    try:
        try:
            raise oom
        except torch.OutOfMemoryError as e:
            raise RuntimeError("wrapped") from BackendCompilerFailed(lambda *a: None, e, None)
    except RuntimeError as outer:
        assert phase_of(outer, p) == "compile"  # found down the cause chain
