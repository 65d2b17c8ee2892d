import { useEffect, useState } from 'preact/hooks';
import { api, hasSession, onSessionLost, setSession } from './api.js';
import { whoami } from './auth.js';
import type { AuthState } from './auth.js';
import { AuthContext, ErrorBox, Link, errorOf, navigate, usePath } from './ui.js';
import type { ApiErrorBody } from './api.js';
import { OverviewPage } from './pages/overview.js';
import { StationsPage } from './pages/stations.js';
import { StationPage } from './pages/station.js';
import { ConnectorPage, ConnectorsPage } from './pages/connectors.js';
import { LoginPage, SchemasPage, UsersPage } from './pages/admin.js';
import { allows } from './auth.js';

const NAV: [string, string][] = [
  ['/', 'Overview'],
  ['/stations', 'Stations'],
  ['/dead-letters', 'Dead letters'],
  ['/connectors', 'Connectors'],
  ['/schemas', 'Schemas'],
  ['/users', 'Users & tokens'],
];

export function App() {
  const path = usePath();
  const [auth, setAuth] = useState<AuthState | undefined>();
  const [error, setError] = useState<ApiErrorBody | undefined>();
  const check = () => whoami().then(setAuth, (e) => setError(errorOf(e)));
  useEffect(() => {
    void check();
    return onSessionLost(() => setAuth({ mode: 'anonymous' }));
  }, []);
  if (error) return <ErrorBox error={error} />;
  // While whoami is on its way the page already loads its data (a 401 brings the login page).
  const state: AuthState = auth ?? { mode: 'pending' };
  if (state.mode === 'anonymous') {
    return (
      <LoginPage
        onLogin={() => {
          void check();
          if (path === '/login') navigate('/');
        }}
      />
    );
  }
  const logout = async () => {
    await api('POST', '/v1/auth/logout').catch(() => {});
    setSession(undefined);
    setAuth({ mode: 'anonymous' });
  };
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  let page;
  if (parts[0] === 'stations' && parts[1]) page = <StationPage name={parts[1]} tab={parts[2]} />;
  else if (parts[0] === 'stations') page = <StationsPage />;
  else if (parts[0] === 'dead-letters') page = <StationsPage deadLettersOnly key="dls" />;
  else if (parts[0] === 'connectors' && parts[1]) page = <ConnectorPage name={parts[1]} />;
  else if (parts[0] === 'connectors') page = <ConnectorsPage />;
  else if (parts[0] === 'schemas') page = <SchemasPage />;
  else if (parts[0] === 'users') page = <UsersPage />;
  else page = <OverviewPage />;
  const nav = NAV.filter(([href]) => href !== '/users' || state.mode === 'user').filter(
    ([href]) => href !== '/connectors' || state.mode === 'pending' || allows(state, 'connector', 'read'),
  );
  return (
    <AuthContext.Provider value={state}>
      <div class="shell">
        <header>
          <span class="brand">Junction</span>
          <nav>
            {nav.map(([href, label]) => (
              <Link href={href} class={(href === '/' ? path === '/' : path.startsWith(href)) ? 'active' : ''}>
                {label}
              </Link>
            ))}
          </nav>
          <span class="who">
            {state.mode === 'user' ? (
              <>
                <span data-testid="whoami">
                  {state.me.name}
                  {state.me.role ? ` (${state.me.role})` : ''}
                </span>{' '}
                <button class="link" onClick={() => void logout()}>
                  log out
                </button>
              </>
            ) : state.mode === 'off' ? (
              <span class="muted">auth off</span>
            ) : null}
          </span>
        </header>
        <main>{page}</main>
      </div>
    </AuthContext.Provider>
  );
}
