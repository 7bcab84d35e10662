// tsc-nn as a library, from plain Node: load a model file, train it for a few steps on CIFAR-10, then compile its
// inference program with the trained weights and classify a batch. Run: node examples/api.js MODEL.ts CIFAR10_PATH
const { loadModel, trainModel, compileModel } = require('tsc-nn');

async function main() {
  const [file, data] = process.argv.slice(2);
  const model = loadModel(file);

  // The seed's recipe (crop + flip, label smoothing, Momentum SGD, warm-up + cosine); every setting can be given.
  const { checkpoint, history } = await trainModel(model, {
    data, batch: 16, epochs: 1, maxSteps: 30, lr: 0.05, warmupEpochs: 0, out: 'runs/api-example', eval: false,
  });
  console.log(`loss ${history[0].loss.toFixed(3)} -> ${history.at(-1).loss.toFixed(3)}; saved ${checkpoint}`);

  const net = await compileModel(model, { mode: 'infer', batch: 4, checkpoint });
  const [batch, channels, height, width] = net.inputs.image;
  const image = new Float32Array(batch * channels * height * width).map(() => Math.random() - 0.5);
  const { logits } = net.run({ image });
  const classes = logits.length / batch;
  for (let i = 0; i < batch; i++) {
    const row = Array.from(logits.subarray(i * classes, (i + 1) * classes));
    console.log(`image ${i}: class ${row.indexOf(Math.max(...row))}`);
  }
  net.close();
}

main().catch((e) => { console.error(e.message); process.exitCode = 1; });
