// graphql-inspector's completion handler for .ci/schema-check: every breaking change of
// schema.graphql must be named, by its schema coordinate in backticks (`User.verified`,
// `Identity`, `Query.users.filter`), in the "### Breaking" list of CHANGELOG.md's newest
// section (the first "## " heading); a mention elsewhere (say, under "### Added") does not count.
const fs = require('fs');

module.exports = ({ breakingChanges }) => {
  const lines = fs.readFileSync('CHANGELOG.md', 'utf8').split('\n');
  const start = lines.findIndex((l) => l.startsWith('## '));
  let end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  if (end < 0) end = lines.length;
  const section = start < 0 ? [] : lines.slice(start + 1, end);
  const from = section.findIndex((l) => /^###\s+Breaking\b/i.test(l));
  let to = section.findIndex((l, i) => i > from && l.startsWith('### '));
  if (to < 0) to = section.length;
  const newest = from < 0 ? '' : section.slice(from, to).join('\n');
  const unnamed = breakingChanges.filter((c) => !c.path || !newest.includes('`' + c.path + '`'));
  if (breakingChanges.length === 0) {
    console.log('schema.graphql: no breaking change');
    return;
  }
  if (unnamed.length === 0) {
    console.log(`schema.graphql: ${breakingChanges.length} breaking change(s), each named in CHANGELOG.md`);
    return;
  }
  console.error(`\nschema.graphql has ${unnamed.length} breaking change(s) that the "### Breaking" list of CHANGELOG.md's newest section (${start < 0 ? 'none' : lines[start]}) does not name:`);
  for (const c of unnamed) {
    console.error(`  \`${c.path || '(no coordinate)'}\`: ${c.message}`);
  }
  console.error('Name each coordinate, in backticks, under "### Breaking" in that section (say what changed and what clients do), or keep the old schema.');
  process.exit(1);
};
