package upstream

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/wasmtool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A wasm upstream (transport "wasm") is a WebAssembly module run inside the
// gateway by package wasmtool. Like a built-in upstream it is an in-process
// MCP server reached over in-memory transports, so it goes through the same
// supervision, catalog, relay, metrics and /readyz as any other upstream.
//
// The module is compiled, and its tools listed, once per Upstream, on the
// first connect; a failure there (missing file, not WebAssembly, a tools/list
// that fails) is a failed connect, retried with backoff, and shows in
// /readyz. Every tool call then runs a fresh instance. A changed module file
// or sandbox changes the Fingerprint, so a reload replaces the Upstream.

// wasmState is what a wasm upstream loaded: its compiled module and the MCP
// server offering the module's tools.
type wasmState struct {
	mod *wasmtool.Module
	srv *mcp.Server
}

// wasmServer returns the wasm upstream's MCP server, loading the module on
// first use. Loading happens outside wasmMu so that Stop never waits for a
// compilation.
func (u *Upstream) wasmServer() (*mcp.Server, error) {
	u.wasmMu.Lock()
	if w := u.wasm; w != nil {
		u.wasmMu.Unlock()
		return w.srv, nil
	}
	u.wasmMu.Unlock()

	start := time.Now()
	sb := wasmSandbox(u.Config().Sandbox)
	mod, err := wasmtool.Load(u.ctx, u.Config().Name, u.Config().Module, sb, &wasmtool.Options{Logger: u.log})
	if err != nil {
		return nil, err
	}
	if h := u.Config().ModuleHash; h != "" && h != mod.Hash() {
		u.log.Info("wasm module changed since the configuration was loaded; using the file as it is now (reload to make it part of the configuration)", "module", u.Config().Module)
	}
	srv, err := mod.NewServer(u.ctx)
	if err != nil {
		_ = mod.Close(context.WithoutCancel(u.ctx))
		return nil, err
	}

	u.wasmMu.Lock()
	defer u.wasmMu.Unlock()
	switch {
	case u.wasmClosed:
		_ = mod.Close(context.WithoutCancel(u.ctx))
		return nil, errors.New("stopped")
	case u.wasm != nil: // loaded meanwhile by a per-session connect
		_ = mod.Close(context.WithoutCancel(u.ctx))
		return u.wasm.srv, nil
	}
	u.wasm = &wasmState{mod: mod, srv: srv}
	u.log.Info("wasm module loaded", "module", u.Config().Module, "sha256", mod.Hash()[:16],
		"memory_mb", sb.MemoryMB, "timeout", sb.Timeout, "mounts", len(sb.Mounts), "took", time.Since(start))
	return srv, nil
}

// closeWASM frees the compiled module, stopping any instance still running.
// A load still under way is freed when it ends.
func (u *Upstream) closeWASM() {
	u.wasmMu.Lock()
	w := u.wasm
	u.wasm = nil
	u.wasmClosed = true
	u.wasmMu.Unlock()
	if w != nil {
		_ = w.mod.Close(context.Background())
	}
}

// connectInProcess connects to an in-process MCP server (a built-in or a
// wasm upstream's) over in-memory transports; closing c closes the server
// side.
func connectInProcess(ctx context.Context, srv *mcp.Server, c *conn) (mcp.Transport, error) {
	ct, st := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		return nil, err
	}
	c.onClose = func() { _ = ss.Close() }
	return ct, nil
}

// wasmSandbox turns the configured sandbox into wasmtool's. An env entry
// without "=" passes the gateway's own variable through, if it is set.
func wasmSandbox(s config.Sandbox) wasmtool.Sandbox {
	sb := wasmtool.Sandbox{MemoryMB: s.MemoryMB, Timeout: s.Timeout.D(), MaxInstances: s.MaxInstances}
	for _, d := range s.Dirs {
		sb.Mounts = append(sb.Mounts, wasmtool.Mount{Host: d.Host, Guest: d.Guest, Writable: d.Writable})
	}
	for _, e := range s.Env {
		if strings.Contains(e, "=") {
			sb.Env = append(sb.Env, e)
		} else if v, ok := os.LookupEnv(e); ok {
			sb.Env = append(sb.Env, e+"="+v)
		}
	}
	return sb
}
