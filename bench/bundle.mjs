// Bundles the two comparison Workers with esbuild, the way wrangler would (browser
// platform, workerd and worker conditions), into the folder given as the first argument.
//
// One change for the AWS SDK: its browser build parses XML answers with DOMParser, which
// Workers lack, so ListParts would fail there. The plugin points that one module at the
// SDK's own pure-JavaScript parser (the one its Node build uses).

import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] ?? path.join(here, 'results/bundles'));

const xmlParserWithoutDom = {
  name: 'xml-parser-without-dom',
  setup(esbuild) {
    // The SDK imports "./xml-parser"; its package.json maps that to the browser file.
    esbuild.onResolve({ filter: /^\.\/xml-parser(\.browser)?(\.js)?$/ }, (args) => (
      args.resolveDir.includes(`${path.sep}@aws-sdk${path.sep}xml-builder${path.sep}`)
        ? { path: path.join(args.resolveDir, 'xml-parser.js') }
        : undefined
    ));
  },
};

for (const worker of ['aws4fetch', 'aws-sdk']) {
  await build({
    entryPoints: [path.join(here, 'workers', `${worker}.js`)],
    outfile: path.join(outdir, `${worker}.js`),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    conditions: ['workerd', 'worker', 'browser'],
    target: 'es2022',
    minify: true,
    logLevel: 'warning',
    plugins: [xmlParserWithoutDom],
  });
}
