// Validates AsyncAPI documents with the AsyncAPI project's own parser
// (@asyncapi/parser, pinned in package.json and package-lock.json): the
// schema of the specification and the parser's recommended rules. Any
// diagnostic of severity error or warning fails the run.
//
//   node validate.mjs FILE...
import { readFile } from 'node:fs/promises';
import { Parser } from '@asyncapi/parser';

const severities = ['error', 'warning', 'info', 'hint'];
const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(file, 'utf8'), { source: file });
  for (const d of diagnostics) {
    const where = d.path && d.path.length ? d.path.join('/') : '(document)';
    console.log(`${file}: ${severities[d.severity] ?? d.severity}: ${d.code}: ${d.message} at ${where}`);
    failed ||= d.severity <= 1;
  }
  if (!document) {
    failed = true;
    console.log(`${file}: not a valid AsyncAPI document`);
  } else if (!failed) {
    console.log(`${file}: valid AsyncAPI ${document.version()}`);
  }
}
process.exit(failed ? 1 : 0);
