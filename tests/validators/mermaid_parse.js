// Parses Mermaid diagrams with Mermaid's own parser: mermaid.min.js (the release that
// .ci/install-validators fetches) run inside a jsdom window, as a browser would.
// Usage: node mermaid_parse.js MERMAID_MIN_JS FILE...  (each FILE holds one diagram)
// Prints `ok TYPE FILE` per diagram; exit 1 with the parser's message on the first
// that does not parse, 2 when the parser cannot be loaded.
'use strict';
const fs = require('fs');
let JSDOM;
try {
  ({ JSDOM } = require('jsdom'));
} catch (e) {
  console.error('mermaid_parse: jsdom is not installed (Debian node-jsdom; NODE_PATH=/usr/share/nodejs): ' + e.message);
  process.exit(2);
}
const [bundle, ...files] = process.argv.slice(2);
if (!bundle || files.length === 0) {
  console.error('usage: node mermaid_parse.js MERMAID_MIN_JS FILE...');
  process.exit(2);
}
const dom = new JSDOM('<!doctype html><html><body></body></html>', { runScripts: 'dangerously' });
const script = dom.window.document.createElement('script');
script.textContent = fs.readFileSync(bundle, 'utf8');
dom.window.document.body.appendChild(script);
const mermaid = dom.window.mermaid;
if (!mermaid || typeof mermaid.parse !== 'function') {
  console.error('mermaid_parse: ' + bundle + ' did not define mermaid.parse');
  process.exit(2);
}
(async () => {
  for (const file of files) {
    try {
      const result = await mermaid.parse(fs.readFileSync(file, 'utf8'));
      console.log('ok ' + result.diagramType + ' ' + file);
    } catch (e) {
      console.error(file + ': ' + (e.message || e));
      process.exit(1);
    }
  }
})();
