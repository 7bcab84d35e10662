// tfjs-core's Node bundle (CommonJS) registers no gradients: the union package @tensorflow/tfjs bundles tfjs-core's
// dist/register_all_gradients, which tfjs-core ships only as ES modules with extensionless relative imports, which
// Node's ES module loader rejects. A resolve hook limited to tfjs-core's dist retries those imports with `.js`, so
// tfjs's own gradient definitions register into the (global) gradient registry that the CommonJS engine reads.
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const RESOLVE_HOOK = `
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (e) {
    const relative = specifier.startsWith('./') || specifier.startsWith('../');
    const inTfjsCore = context.parentURL !== undefined && context.parentURL.includes('/@tensorflow/tfjs-core/dist/');
    if (relative && inTfjsCore && (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'ERR_UNSUPPORTED_DIR_IMPORT')) return next(specifier + '.js', context);
    throw e;
  }
}`;

let registered: Promise<void> | undefined;

/** Register tfjs's gradient functions once per process (takes a second or two: it loads tfjs-core's ES modules). */
export function registerTfjsGradients(): Promise<void> {
  registered ??= (async () => {
    register(`data:text/javascript,${encodeURIComponent(RESOLVE_HOOK)}`);
    const entry = createRequire(__filename).resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
    await import(pathToFileURL(entry).href);
  })();
  return registered;
}
