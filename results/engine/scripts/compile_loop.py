import sys, torch, torch._dynamo
sys.path.insert(0, ".")  # run from the repository root
import resnet_impl
torch.set_num_threads(1)
import torch._inductor.config as ic
ic.freezing = True
m = resnet_impl.create_model("resnet18").eval().to(memory_format=torch.channels_last)
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
while True:
    torch._dynamo.reset()
    with torch.no_grad():
        torch.compile(m)(x)
