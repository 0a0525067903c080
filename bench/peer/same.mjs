// node same.mjs a.json b.json …: checks that dashboard answers hold the same page, ids aside
// (each server has its own), so that the servers compared do the same work. Exits 1 if not.
import { readFileSync } from 'node:fs';
const norm = (file) => {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  if (r.errors || !r.data) throw new Error(`${file}: ${JSON.stringify(r.errors ?? r).slice(0, 500)}`);
  return r.data.conversations.nodes.map((c) => JSON.stringify({
    user: c.user && {
      name: c.user.name,
      companies: c.user.companies.nodes.map((n) => n.name).sort(),
      organizations: c.user.organizations.nodes.map((n) => n.name).sort(),
      externalProfile: c.user.externalProfile,
    },
    messages: c.messages.nodes.map((m) => m.body),
  })).sort();
};
const [first, ...rest] = process.argv.slice(2);
const want = norm(first);
let ok = true;
for (const f of rest) {
  const got = norm(f);
  const diff = got.findIndex((g, i) => g !== want[i]);
  if (got.length !== want.length || diff >= 0) {
    ok = false;
    console.log(`${f} differs from ${first}: ${got.length} rows against ${want.length}` +
      (diff >= 0 ? `; first difference:\n  ${got[diff]}\n  ${want[diff]}` : ''));
  }
}
console.log(ok ? `same page (${want.length} rows) from ${1 + rest.length} servers` : 'pages differ');
process.exit(ok ? 0 : 1);
