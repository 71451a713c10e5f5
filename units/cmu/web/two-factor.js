// Two-factor sign-in (RFC 6238 TOTP) on the Account page, for every role (issue 18 item 2:
// required of operators where the platform says so, a choice for owners and sub-accounts).
// Enrol: the server makes a secret; the user adds it to an authenticator app (the otpauth://
// link opens one on a phone, the key can be typed in elsewhere) and proves it with a first
// code; the ten recovery codes are shown once. Turn off: the password and a current code.

import { api, download, field, form, h, messageOf, toast } from './app.js';

/** The key in groups of four, as authenticator apps show and accept it. */
const grouped = (secret) => secret.replace(/(.{4})/g, '$1 ').trim();

const codeField = (label = 'Code from your authenticator app') =>
  field(label, { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '11', required: true, dataset: { field: 'code' } }, 'Six digits.');

/** The "Two-factor sign-in" card: loads itself; ids are for the browser tests. */
export function twoFactorCard() {
  const body = h('div', { id: 'totp' }, h('p', { class: 'muted' }, 'Loading…'));
  const card = h('section', { class: 'card narrow', 'aria-labelledby': 'totp-h' }, h('h2', { id: 'totp-h' }, 'Two-factor sign-in'), body);

  const load = async () => {
    try {
      show(await api('GET', '/me/totp'));
    } catch (e) {
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, messageOf(e)));
    }
  };

  const show = (st) => {
    body.dataset.state = st.enabled ? 'on' : 'off';
    if (!st.enabled) {
      body.replaceChildren(
        h('p', { id: 'totp-state' }, st.required
          ? 'Off. This platform requires it of your account: set it up to use the operator functions.'
          : 'Off. With it on, logging in also asks for a code from an authenticator app on your phone.'),
        h('button', { type: 'button', class: 'primary', onclick: enrol }, 'Set up two-factor sign-in'),
      );
      return;
    }
    const left = st.recovery_codes_left;
    body.replaceChildren(
      h('p', { id: 'totp-state' }, `On. ${left} recovery ${left === 1 ? 'code' : 'codes'} left.`),
      st.required
        ? h('p', { class: 'muted' }, 'This platform requires two-factor sign-in of your account: it cannot be turned off.')
        : form({ 'aria-label': 'Turn off two-factor sign-in' }, async (f) => {
          await api('POST', '/me/totp/disable', { password: f.password.value, code: f.code.value.trim() });
          toast('Two-factor sign-in is off.');
          await load();
        },
        field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, dataset: { field: 'password' } }),
        codeField('Code from your authenticator app, or a recovery code'),
        h('button', { type: 'submit' }, 'Turn off two-factor sign-in')),
    );
  };

  const enrol = async () => {
    let e;
    try {
      e = await api('POST', '/me/totp/enroll');
    } catch (err) {
      toast(messageOf(err));
      return;
    }
    body.dataset.state = 'enrolling';
    body.replaceChildren(
      h('ol', { class: 'steps' },
        h('li', null, 'Open your authenticator app (for example FreeOTP, Aegis, Google Authenticator) and add an account: ',
          h('a', { href: e.uri, id: 'totp-uri' }, 'open it in the app'), ' on this phone, or type in this key:'),
        h('li', null, h('code', { id: 'totp-secret', 'data-secret': e.secret }, grouped(e.secret))),
        h('li', null, 'Type the code the app shows now:')),
      form({ 'aria-label': 'Confirm two-factor sign-in' }, async (f) => {
        const r = await api('POST', '/me/totp/confirm', { code: f.code.value.trim() });
        recovery(r.recovery_codes);
      },
      codeField(),
      h('button', { type: 'submit', class: 'primary' }, 'Turn on'),
      h('button', { type: 'button', onclick: load }, 'Cancel')),
    );
  };

  const recovery = (codes) => {
    body.dataset.state = 'recovery';
    const text = `peercam recovery codes (each works once, instead of a code from the app)\n\n${codes.join('\n')}\n`;
    body.replaceChildren(
      h('p', { role: 'status', class: 'notice' }, 'Two-factor sign-in is on.'),
      h('p', null, 'Keep these recovery codes somewhere safe: each logs you in once if you lose your phone. They are shown only now.'),
      h('ul', { class: 'recovery-codes', id: 'totp-recovery' }, codes.map((c) => h('li', null, h('code', null, c)))),
      h('p', null,
        h('button', { type: 'button', onclick: () => download(new Blob([text], { type: 'text/plain' }), 'peercam-recovery-codes.txt') }, 'Download as a text file'),
        ' ',
        h('button', { type: 'button', class: 'primary', onclick: load }, 'I have saved them')),
    );
  };

  load();
  return card;
}
