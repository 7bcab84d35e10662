"""The benchmark's PyTorch peer (driven by tools/bench/peers/pytorch.ts): tools/torch's independent ShuffleNetV1 on
the CPU, in a process of its own, one JSON line per request on stdin and one per reply on stdout.

    /usr/bin/python3 torch_peer.py --checkpoint CKPT.safetensors --threads 2 \
        --momentum 0.9 --weight-decay 4e-5 --bn-momentum 0.1 --bn-eps 1e-5 --label-smoothing 0.1

CKPT is a tsc-nn checkpoint (its metadata gives the model's configuration), loaded as tools/torch/roundtrip.py does.

The first line out is {"ready": true}, or {"cannot": why} where torch cannot be imported. Then:

    {"op": "infer", "images"?: IMAGES}                   -> {"logits": base64 of float32 [batch, classes]}
    {"op": "train", "lr", "images"?: ..., "labels"?: {"path"}}  -> {"loss"} (before the update)
    {"op": "parameters", "path"}                         -> {} once the state_dict is written there (safetensors)
    {"op": "peak-rss"}                                   -> {"peakRssMb"} of this process

IMAGES is {"path", "shape"}: a raw float32 file, read when named and kept for the requests after it (labels too:
float32 class indices). Any failure is a traceback on stderr and exit status 1; the end of stdin ends the process.
"""

import argparse
import base64
import json
import os
import resource
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "torch"))

try:
    import torch
except Exception as e:  # noqa: BLE001 - a broken install fails in ways other than ImportError too
    print(json.dumps({"cannot": f"{sys.executable} cannot import torch ({type(e).__name__}: {e})"}), flush=True)
    sys.exit(0)

import roundtrip  # noqa: E402
import safetensors_io  # noqa: E402


def parser():
    p = argparse.ArgumentParser(prog="torch_peer.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a tsc-nn checkpoint: parameters, BN statistics, config")
    p.add_argument("--threads", type=int, required=True)
    for name in ("momentum", "weight-decay", "bn-momentum", "bn-eps", "label-smoothing"):
        p.add_argument(f"--{name}", type=float, required=True)
    return p


def read_f32(path, shape):
    with open(path, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(shape)


class Peer:
    def __init__(self, args):
        # No flags over the checkpoint's own configuration.
        flags = dict.fromkeys(("model", "size", "group", "stem", "resolution", "depth", "classes"))
        self.model, _, _ = roundtrip.load_model(argparse.Namespace(checkpoint=args.checkpoint, **flags))
        for m in self.model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum, m.eps = args.bn_momentum, args.bn_eps
        params = list(self.model.parameters())
        # Weight decay on the convolution and dense weights only, as tsc-nn's optimizer.
        self.optimizer = torch.optim.SGD([
            {"params": [p for p in params if p.dim() > 1], "weight_decay": args.weight_decay},
            {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
        ], lr=0.0, momentum=args.momentum)
        self.criterion = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
        self.images = None
        self.labels = None

    def infer(self, _):
        self.model.eval()
        with torch.no_grad():
            logits = self.model(self.images)
        return {"logits": base64.b64encode(logits.contiguous().numpy().tobytes()).decode("ascii")}

    def train(self, request):
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = request["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.criterion(self.model(self.images), self.labels)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    def parameters(self, request):
        safetensors_io.save(request["path"], self.model.state_dict())
        return {}

    def peak_rss(self, _):
        return {"peakRssMb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}  # Linux: KiB

    def handle(self, request):
        if "images" in request:
            self.images = read_f32(request["images"]["path"], request["images"]["shape"])
        if "labels" in request:
            self.labels = read_f32(request["labels"]["path"], [-1]).to(torch.int64)
        handlers = {"infer": self.infer, "train": self.train, "parameters": self.parameters, "peak-rss": self.peak_rss}
        return handlers[request["op"]](request)


def main():
    args = parser().parse_args()
    torch.set_num_threads(args.threads)
    peer = Peer(args)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        print(json.dumps(peer.handle(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
