// Generate the TypeScript declarations of the contract for JavaScript processors, with the
// type generator of the jco that componentize-js brings (`jco guest-types`):
//
//   node scripts/jco-types.mjs TOOLCHAIN WIT_FILE OUT_DIR
//
// TOOLCHAIN is the directory `scripts/build-polyglot` installs into (target/polyglot). It
// writes OUT_DIR/processor.d.ts and OUT_DIR/interfaces/*.d.ts (`scripts/build-polyglot
// --types` writes guest/js/types/, which `twinsync plugin new --lang js` ships).
//
// Why not `jco guest-types` itself: jco 1.35's CLI fails on every path with "failed to read
// path for WIT ... No such file or directory (os error 44)". Its type generator is a
// WebAssembly component that reads the WIT through preview2-shim 0.26, which no longer
// preopens `/` by default; preopening it before calling the generator is the whole fix.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const [toolchain, wit, out] = process.argv.slice(2);
if (!toolchain || !wit || !out) {
  console.error('usage: node scripts/jco-types.mjs TOOLCHAIN WIT_FILE OUT_DIR');
  process.exit(2);
}
const transpile = join(resolve(toolchain), 'node_modules/@bytecodealliance/jco-transpile');
const shim = join(transpile, 'node_modules/@bytecodealliance/preview2-shim/dist/nodejs/filesystem.js');
const { _setPreopens } = await import(shim);
_setPreopens({ '/': '/' });
const { generateGuestTypes } = await import(join(transpile, 'dist/typegen.js'));
const jco = JSON.parse(
  readFileSync(join(resolve(toolchain), 'node_modules/@bytecodealliance/jco/package.json'), 'utf8'),
).version;

const files = await generateGuestTypes(resolve(wit), { worldName: 'processor', outDir: '' });
const header = `// Generated from wit/processor.wit by \`scripts/build-polyglot --types\` (jco ${jco}); do not edit.\n`;
for (const [name, text] of Object.entries(files)) {
  const path = join(out, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, header + (typeof text === 'string' ? text : new TextDecoder().decode(text)));
  console.log(`  wrote ${path}`);
}
