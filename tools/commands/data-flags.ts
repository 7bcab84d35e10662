// `--data PATH` or `--download`: where CIFAR-10 comes from, shared by train, eval and predict.
import * as path from 'node:path';
import { UserError } from '../../src/ir/errors';
import { downloadCifar10 } from '../../src/runtime/data/cifar10';
import { cacheDir } from '../../src/platform/cache';
import { ProgressBar } from '../../src/runtime/report/progress';

export const dataOptions = { data: { type: 'string' }, download: { type: 'boolean' } } as const;

export async function resolveData(values: Readonly<Record<string, string | boolean | undefined>>): Promise<string> {
  if (typeof values.data === 'string') return values.data;
  if (values.download) {
    let bar: ProgressBar | undefined;
    const file = await downloadCifar10(path.join(cacheDir(), 'data'), {
      onProgress: (bytes, total) => {
        bar ??= new ProgressBar('download', total ?? 0);
        bar.update(bytes, `${(bytes / 2 ** 20).toFixed(1)} MiB`);
      },
    });
    bar?.done();
    return file;
  }
  throw new UserError('no data: pass --data PATH (cifar-10-binary.tar.gz, its cifar-10-batches-bin folder or a .bin file) or --download to fetch the official archive');
}
