// The tsc-nn command line. Bad input prints one line and exits 1; only internal errors print a stack.
import { UserError } from '../src/ir/errors';
import { TypeCheckError } from '../src/frontend/loader';
import { parseCommandArgs, type Command } from './commands/common';
import { compileCommand } from './commands/compile';
import { checkOpCommand } from './commands/check-op';
import { trainCommand } from './commands/train';
import { benchCommand } from './commands/bench';
import { evalCommand } from './commands/eval';
import { predictCommand } from './commands/predict';
import { exportCommand } from './commands/export';
import { serveCommand } from './commands/serve';

const commands: readonly Command[] = [compileCommand, trainCommand, evalCommand, predictCommand, checkOpCommand, benchCommand, exportCommand, serveCommand];

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'tsc-nn: a deep-learning compiler in TypeScript (tensor expressions -> IR -> passes -> gpu.js kernels)',
    '',
    'usage: tsc-nn <command> [options]',
    '',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'tsc-nn <command> --help shows a command\'s flags.',
  ].join('\n');
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') { console.log(help()); return 0; }
  const cmd = commands.find((c) => c.name === name);
  try {
    if (!cmd) throw new UserError(`unknown command "${name}": valid commands are ${commands.map((c) => c.name).join(', ')}`);
    const args = parseCommandArgs(cmd, rest);
    if (args.values.help) { console.log(`usage: ${cmd.usage}\n\n${cmd.summary}`); return 0; }
    await cmd.run(args);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof TypeCheckError) { console.error(e.diagnostics.join('\n')); return 1; }
    if (e instanceof UserError) { console.error(`tsc-nn ${name}: ${e.message}`); return 1; }
    throw e;
  }
}

if (require.main === module) {
  process.setSourceMapsEnabled(true);
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
    console.error('tsc-nn: internal error (please report it):', e);
    process.exitCode = 2;
  });
}
