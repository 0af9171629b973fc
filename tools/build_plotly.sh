#!/usr/bin/env bash
# Rebuild the dashboard's Plotly: plotly.js with only the trace types app.js draws (scatter, which plotly.js's
# core always holds, and TRACES), minified by esbuild, into hpoqueue/dashboard/static/ with its licences.
# Needs node and npm (the npm registry) at build time only; users get the built file inside the wheel.
#   tools/build_plotly.sh                       # the pinned versions below
#   PLOTLY_VERSION=4.2.0 tools/build_plotly.sh  # another plotly.js, then run tests/dashboard
set -euo pipefail
PLOTLY_VERSION=${PLOTLY_VERSION:-4.1.1}
ESBUILD_VERSION=${ESBUILD_VERSION:-0.28.2}
TRACES="bar heatmap parcoords"  # every trace type app.js uses besides scatter (tests/dashboard checks this)
OUT="$(cd "$(dirname "$0")/.." && pwd)/hpoqueue/dashboard/static"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund "plotly.js@$PLOTLY_VERSION" "esbuild@$ESBUILD_VERSION"
{
  echo "var Plotly = require('plotly.js/lib/core');"
  echo "Plotly.register([$(for t in $TRACES; do printf "require('plotly.js/lib/%s'), " "$t"; done)]);"
  echo "module.exports = Plotly;"
} > entry.js
cat > build.mjs <<'JS'
import * as esbuild from 'esbuild';
// plotly.js's own esbuild settings (its esbuild-config.js), without its plugins: CSS is only the map traces'
const noCss = { name: 'no-css', setup(b) { b.onLoad({ filter: /\.css$/ }, () => ({ contents: '', loader: 'js' })); } };
await esbuild.build({ entryPoints: ['entry.js'], outfile: 'plotly-hpoqueue.min.js', format: 'iife', globalName: 'Plotly',
  bundle: true, minify: true, legalComments: 'external', plugins: [noCss], loader: { '.glsl': 'text' },
  alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
  define: { global: 'window', 'define.amd': 'false', 'process.env.NODE_DEBUG': 'false' }, target: 'es2016' });
JS
node build.mjs
{
  echo "/*! plotly.js v$PLOTLY_VERSION (MIT, see plotly-hpoqueue.LICENSE.txt), traces: scatter $TRACES;"
  echo "    built by hpoqueue's tools/build_plotly.sh with esbuild $ESBUILD_VERSION */"
  cat plotly-hpoqueue.min.js
} > "$OUT/plotly-hpoqueue.min.js"
{
  cat node_modules/plotly.js/LICENSE
  echo
  echo "plotly.js's dependencies in the bundle keep their own licences; the notices esbuild found in them:"
  cat plotly-hpoqueue.min.js.LEGAL.txt
} > "$OUT/plotly-hpoqueue.LICENSE.txt"
ls -l "$OUT/plotly-hpoqueue.min.js"
