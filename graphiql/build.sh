#!/usr/bin/env bash
# Builds the GraphiQL page that Known embeds and serves at / (graphiql.go) from the pinned npm
# packages in package.json and package-lock.json, into assets/. Run it after changing src/ or a
# version, and commit assets/ and package-lock.json; CI runs it and fails when assets/ changes.
# It needs only Node.js, npm and the npm registry. Dependencies are installed in a temporary
# directory, so no node_modules lands in the Go module.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp -R "$here/package.json" "$here/src" "$work/"
cd "$work"
if [ -f "$here/package-lock.json" ]; then
  cp "$here/package-lock.json" .
  # --ignore-scripts: esbuild finds its platform binary through its optional dependency.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
else
  npm install --ignore-scripts --no-audit --no-fund --loglevel=error
  cp package-lock.json "$here/package-lock.json"
fi

# One script and one style sheet, minified production builds; the fonts GraphiQL's CSS uses are
# inlined as data: URLs, so that the page needs nothing but these two files.
npx --no-install esbuild src/main.jsx \
  --bundle --minify --format=iife --target=es2020 --jsx=automatic \
  --define:process.env.NODE_ENV='"production"' \
  --loader:.woff=dataurl --loader:.woff2=dataurl --loader:.ttf=dataurl --loader:.svg=dataurl \
  --legal-comments=eof --charset=utf8 --log-level=warning \
  --entry-names=graphiql --outdir=out

rm -rf "$here/assets"
mkdir -p "$here/assets/graphiql"
cp src/index.html "$here/assets/index.html"
cp out/graphiql.js out/graphiql.css "$here/assets/graphiql/"
ls -l "$here/assets" "$here/assets/graphiql"
