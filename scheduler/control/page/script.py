"""The page's one script (it runs under the response's CSP nonce).

The filter: a name box and a state menu, applied in place and kept in the URL fragment
(`#q=sync&state=failing`), so a reload or a shared link shows the same jobs; the summary's
links set the fragment too. The buttons: POST to the API with the page's own Basic
credentials and a JSON body, `{"reason": ...}` when the job's reason box holds one, else `{}`;
a non-2xx answer's error (or its text) is shown, a 2xx reloads the page (the fragment stays)."""

SCRIPT = """
const $ = (s) => document.querySelector(s);
function wanted() {
  const p = new URLSearchParams(location.hash.slice(1));
  return {q: p.get('q') || '', state: p.get('state') || 'all'};
}
function apply() {
  const w = wanted(), box = $('#filter'), menu = $('#state');
  if (![...menu.options].some((o) => o.value === w.state)) w.state = 'all';
  if (document.activeElement !== box) box.value = w.q;
  menu.value = w.state;
  const q = w.q.toLowerCase();
  let shown = 0, total = 0;
  for (const card of document.querySelectorAll('section.job')) {
    total++;
    const ok = card.dataset.name.toLowerCase().includes(q) &&
      (w.state === 'all' || card.dataset.states.split(' ').includes(w.state));
    card.hidden = !ok;
    if (ok) shown++;
  }
  $('#shown').textContent = shown === total ? total + ' jobs' : shown + ' of ' + total + ' jobs shown';
  for (const a of document.querySelectorAll('#summary a[data-state]')) {
    a.classList.toggle('on', a.dataset.state === w.state);
  }
}
function setFilter() {
  const p = new URLSearchParams(), q = $('#filter').value, state = $('#state').value;
  if (q) p.set('q', q);
  if (state !== 'all') p.set('state', state);
  const h = p.toString();
  history.replaceState(null, '', h ? '#' + h : location.pathname + location.search);
  apply();
}
$('#filter').addEventListener('input', setFilter);
$('#state').addEventListener('change', setFilter);
window.addEventListener('hashchange', apply);
apply();

document.addEventListener('click', async (ev) => {
  const b = ev.target.closest('button[data-action]');
  if (!b) return;
  const msg = $('#msg');
  msg.textContent = '';
  const card = b.closest('section.job'), box = card && card.querySelector('input.reason');
  const reason = box ? box.value.trim() : '';
  const run = b.dataset.run ? 'runs/' + encodeURIComponent(b.dataset.run) + '/' : '';
  const what = b.dataset.job + (b.dataset.run ? ' ' + b.dataset.run : '');
  b.disabled = true;
  try {
    const r = await fetch('api/v1/jobs/' + encodeURIComponent(b.dataset.job) + '/' + run + b.dataset.action, {
      method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify(reason ? {reason} : {})});
    if (!r.ok) {
      const text = (await r.text()).trim();
      let why = r.status + ' ' + (text.slice(0, 300) || r.statusText);
      try { why = JSON.parse(text).error || why; } catch (e) {}
      msg.textContent = what + ': ' + why;
    } else { location.reload(); }
  } catch (e) { msg.textContent = String(e); }
  b.disabled = false;
});
"""
