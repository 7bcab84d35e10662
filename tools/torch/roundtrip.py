"""tsc-nn checkpoints in real PyTorch, and PyTorch state_dicts back to tsc-nn.

    /usr/bin/python3 tools/torch/roundtrip.py eval --model shufflenet --size 0.5x --group 3 \
        --checkpoint pretrained/shufflenetv1-0.5x-g3-cifar-16_781.safetensors --data cifar-10-binary.tar.gz [--count N]
    /usr/bin/python3 tools/torch/roundtrip.py logits --model resnet --depth 20 --checkpoint CKPT --data DATA --count 8
    /usr/bin/python3 tools/torch/roundtrip.py export-state-dict --model shufflenet --size 0.5x --group 3 \
        --checkpoint CKPT --out state_dict.safetensors

`eval` prints one JSON line {"top1", "top5", "images", "loss"} on the CIFAR-10 test split (tsc-nn's evaluation:
x / 255 normalised by the CIFAR-10 mean and std, CHW, no augmentation; mean cross-entropy without smoothing; a tie
with the label's logit ranks the lower class first). `logits` prints the first --count images' predictions as
tsc-nn predict --json does ([{"index", "label", "predicted", "logits"}]). `export-state-dict` loads the checkpoint
into the PyTorch model and writes `model.state_dict()` as `safetensors.torch.save_file` would (no metadata,
num_batches_tracked as I64), which `tsc-nn eval/predict --checkpoint FILE` reads given the model flags.

A checkpoint is a tsc-nn checkpoint (its `tsc-nn.config` metadata gives the configuration; flags override it) or a
plain state_dict (the flags give it). tsc-nn's `momentum.*` optimizer buffers are ignored; every other tensor must
match the model by name and shape, and the model's tensors must all be there (num_batches_tracked may be absent):
load_state_dict(strict=True). A mismatch, like any bad input, is one line on stderr and exit status 1.
"""

import argparse
import gzip
import json
import os
import sys
import tarfile

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import models  # noqa: E402
import safetensors_io  # noqa: E402

# tsc-nn's normalisation (src/runtime/data/augment.ts).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.201)
RECORD_BYTES = 3073  # label byte + 3 x 32 x 32 image bytes (R plane, G plane, B plane)
TEST_FILE = "test_batch.bin"
BATCHES_DIR = "cifar-10-batches-bin"
MOMENTUM_PREFIX = "momentum."


class Failure(Exception):
    """Bad input: reported as one line."""


# ---- Models and checkpoints

MODEL_DEFAULTS = {
    "shufflenet": {"size": "2.0x", "group": 3, "classes": 10, "stem": "cifar", "resolution": 0},
    "resnet": {"depth": 20, "classes": 10, "resolution": 32},
}


def model_config(args, metadata):
    """The configuration: tsc-nn's stored one (if any) with the command-line flags on top."""
    stored = {}
    if "tsc-nn.config" in metadata:
        try:
            stored = json.loads(metadata["tsc-nn.config"])
        except json.JSONDecodeError:
            raise Failure(f"{args.checkpoint}: metadata tsc-nn.config is not valid JSON") from None
    name = args.model or stored.get("model", "shufflenet" if stored else None)
    if name is None:
        raise Failure(f"{args.checkpoint} is a plain state_dict: say which model it is (--model shufflenet|resnet and its flags)")
    if name not in MODEL_DEFAULTS:
        raise Failure(f"unknown model {name!r}: shufflenet or resnet")
    if stored and stored.get("model", "shufflenet") != name:
        raise Failure(f"{args.checkpoint} is a checkpoint of model {stored.get('model')}, not {name}")
    config = dict(MODEL_DEFAULTS[name])
    config.update({k: v for k, v in stored.items() if k in config})
    for key in config:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    if name == "shufflenet" and not config["resolution"]:
        config["resolution"] = 224 if config["stem"] == "imagenet" else 32
    return name, config


def build_model(name, config):
    try:
        if name == "shufflenet":
            return models.ShuffleNetV1(config["size"], int(config["group"]), int(config["classes"]), config["stem"])
        return models.ResNetCifar(int(config["depth"]), int(config["classes"]))
    except ValueError as e:
        raise Failure(str(e)) from None


def listing(what, names):
    if not names:
        return ""
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return f"{what} ({len(names)}): {shown}"


def load_model(args):
    """The PyTorch model with the checkpoint's weights, in eval mode, and its configuration."""
    try:
        tensors, metadata = safetensors_io.load(args.checkpoint)
    except OSError as e:
        raise Failure(f"cannot read {args.checkpoint}: {e.strerror or e}") from None
    except ValueError as e:  # a malformed file; the message names it
        raise Failure(str(e)) from None
    name, config = model_config(args, metadata)
    model = build_model(name, config)
    expected = model.state_dict()
    state = {k: v for k, v in tensors.items() if not k.startswith(MOMENTUM_PREFIX)}
    # tsc-nn keeps no batch counter: PyTorch's starts at zero (it only matters for momentum=None BN training).
    for key, value in expected.items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    mis_shaped = [f"{k} is {list(state[k].shape)}, the model needs {list(v.shape)}"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    wrong_type = [f"{k} is {state[k].dtype}, the model needs {v.dtype}"
                  for k, v in expected.items() if k in state and state[k].dtype != v.dtype]
    problems = [p for p in (listing("missing", missing), listing("extra", extra), listing("mis-shaped", mis_shaped),
                            listing("wrong dtype", wrong_type)) if p]
    if problems:
        raise Failure(f"{args.checkpoint} does not match {name} {json.dumps(config)}: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, name, config


# ---- CIFAR-10 test split

def read_test_records(source):
    """Raw test records from the official archive (.tar.gz), its extracted folder (or parent), or a .bin file."""
    if os.path.isdir(source):
        for candidate in (os.path.join(source, BATCHES_DIR, TEST_FILE), os.path.join(source, TEST_FILE)):
            if os.path.isfile(candidate):
                with open(candidate, "rb") as f:
                    return f.read(), candidate
        raise Failure(f"{source}: no {TEST_FILE} in it or in {BATCHES_DIR}/ under it")
    if not os.path.isfile(source):
        raise Failure(f"{source} does not exist")
    if source.endswith(".bin"):
        with open(source, "rb") as f:
            return f.read(), source
    try:
        with tarfile.open(source, "r:*") as tar:
            for member in tar:
                if member.isfile() and os.path.basename(member.name) == TEST_FILE:
                    return tar.extractfile(member).read(), f"{source}:{member.name}"
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, OSError) as e:
        raise Failure(f"{source}: not a readable CIFAR-10 archive ({e})") from None
    raise Failure(f"{source}: the archive holds no {TEST_FILE}")


def load_test_split(source, count=None):
    """(images [N, 3, 32, 32] float32 normalised as tsc-nn does, labels [N] int64)."""
    raw, where = read_test_records(source)
    if not raw or len(raw) % RECORD_BYTES:
        raise Failure(f"{where}: {len(raw)} bytes is not a whole number of {RECORD_BYTES}-byte records")
    records = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(-1, RECORD_BYTES)
    if count is not None:
        records = records[:count]
    labels = records[:, 0].to(torch.int64)
    pixels = records[:, 1:].reshape(-1, 3, 32, 32).to(torch.float64)
    # x / 255 normalised per channel, computed as tsc-nn does (x * (1 / (255 std)) - mean / std in float64,
    # rounded once to float32), so both frameworks see bit-identical inputs.
    scale = torch.tensor([1 / (255 * s) for s in CIFAR10_STD], dtype=torch.float64).reshape(1, 3, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(CIFAR10_MEAN, CIFAR10_STD)], dtype=torch.float64).reshape(1, 3, 1, 1)
    return (pixels * scale - shift).to(torch.float32), labels


def batches(images, labels, resolution, batch=100):
    # 100 images a batch: on CPU, batches of 500 took 2.7x the CPU time (page faults of the larger activations).
    for start in range(0, len(labels), batch):
        x = images[start:start + batch]
        if resolution != x.shape[-1]:
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
        yield x, labels[start:start + batch]


def predict_logits(model, images, labels, resolution):
    with torch.no_grad():
        return torch.cat([model(x) for x, _ in batches(images, labels, resolution)])


def top_k_hits(logits, labels, k):
    """Hits where fewer than k classes rank above the label: higher logit, or an equal one with a lower index."""
    target = logits.gather(1, labels[:, None])
    classes = torch.arange(logits.shape[1])[None, :]
    better = (logits > target) | ((logits == target) & (classes < labels[:, None]))
    return int((better.sum(1) < k).sum())


# ---- Subcommands

def cmd_eval(args):
    model, _, config = load_model(args)
    images, labels = load_test_split(args.data, args.count)
    logits = predict_logits(model, images, labels, int(config["resolution"])).to(torch.float64)
    n = len(labels)
    loss = float(F.cross_entropy(logits, labels, reduction="sum")) / n
    print(json.dumps({"top1": top_k_hits(logits, labels, 1) / n, "top5": top_k_hits(logits, labels, min(5, logits.shape[1])) / n,
                      "images": n, "loss": loss}))


def cmd_logits(args):
    model, _, config = load_model(args)
    images, labels = load_test_split(args.data, args.count)
    logits = predict_logits(model, images, labels, int(config["resolution"]))
    out = []
    for i, row in enumerate(logits.tolist()):
        best = max(range(len(row)), key=lambda c: (row[c], -c))  # the first maximum
        out.append({"index": i, "label": int(labels[i]), "predicted": best, "logits": row})
    print(json.dumps(out))


def cmd_export(args):
    model, _, _ = load_model(args)
    try:
        safetensors_io.save(args.out, model.state_dict())
    except OSError as e:
        raise Failure(f"cannot write {args.out}: {e}") from None
    print(json.dumps({"out": args.out, "tensors": len(model.state_dict()), "parameters": models.parameter_count(model)}))


def positive(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parser():
    p = argparse.ArgumentParser(prog="roundtrip.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(q):
        q.add_argument("--model", choices=sorted(MODEL_DEFAULTS), help="default: the checkpoint's (tsc-nn metadata)")
        q.add_argument("--checkpoint", required=True, help="a tsc-nn checkpoint or a PyTorch state_dict (.safetensors)")
        q.add_argument("--size", choices=["0.5x", "1.0x", "1.5x", "2.0x"])
        q.add_argument("--group", type=int, choices=[3, 8])
        q.add_argument("--stem", choices=["cifar", "imagenet"])
        q.add_argument("--resolution", type=int)
        q.add_argument("--depth", type=int)
        q.add_argument("--classes", type=int)
        q.add_argument("--threads", type=positive, default=2, help="torch.set_num_threads (default 2)")

    def data(q, count_help, default=None):
        q.add_argument("--data", required=True, help="CIFAR-10: cifar-10-binary.tar.gz, its folder, or test_batch.bin")
        q.add_argument("--count", type=positive, default=default, help=count_help)

    q = sub.add_parser("eval", help="loss, top-1, top-5 on the CIFAR-10 test split (one JSON line)")
    common(q)
    data(q, "only the first N test images")
    q.set_defaults(run=cmd_eval)
    q = sub.add_parser("logits", help="the first --count test images' logits (JSON, as tsc-nn predict --json)")
    common(q)
    data(q, "how many images (default 16)", 16)
    q.set_defaults(run=cmd_logits)
    q = sub.add_parser("export-state-dict", help="write model.state_dict() as safetensors (no metadata)")
    common(q)
    q.add_argument("--out", required=True)
    q.set_defaults(run=cmd_export)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        args.run(args)
    except Failure as e:
        print(f"roundtrip.py {args.command}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
