package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"
)

// MaxRequestBytes bounds a request body; dockerd's largest (CreateEndpoint
// with a long port map) is a few KiB.
const MaxRequestBytes = 1 << 20

// manifest answers /Plugin.Activate: both APIs on this one socket.
const manifest = `{"Implements":["NetworkDriver","IpamDriver"]}`

// gwAllocCheckResponse is GwAllocCheck's answer (not in go-plugins-helpers).
type gwAllocCheckResponse struct {
	SkipIPv4 bool
	SkipIPv6 bool
}

// errorResponse carries errors in the field each API reads: NetworkDriver
// clients read "Err", IpamDriver clients "Error"; a non-200 status makes
// both treat it as a failure.
type errorResponse struct {
	Err   string
	Error string
}

// NewHandler serves every route of both APIs from d. go-plugins-helpers gives
// each API its own mux and Activate manifest, so the routes are composed here
// from its request/response types (protocol.md §1.3).
func NewHandler(d *Driver, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
		_, _ = io.WriteString(w, manifest)
	})
	nd := "/NetworkDriver."
	noBody(mux, nd+"GetCapabilities", func(context.Context) (any, error) { return d.Capabilities(), nil })
	route(mux, nd+"CreateNetwork", func(ctx context.Context, r *network.CreateNetworkRequest) (any, error) {
		return struct{}{}, d.CreateNetwork(ctx, r)
	})
	route(mux, nd+"DeleteNetwork", func(ctx context.Context, r *network.DeleteNetworkRequest) (any, error) {
		return struct{}{}, d.DeleteNetwork(ctx, r)
	})
	route(mux, nd+"AllocateNetwork", func(ctx context.Context, r *network.AllocateNetworkRequest) (any, error) {
		return d.AllocateNetwork(ctx, r)
	})
	route(mux, nd+"FreeNetwork", func(ctx context.Context, r *network.FreeNetworkRequest) (any, error) {
		return struct{}{}, d.FreeNetwork(ctx, r)
	})
	route(mux, nd+"CreateEndpoint", func(ctx context.Context, r *network.CreateEndpointRequest) (any, error) {
		return d.CreateEndpoint(ctx, r)
	})
	route(mux, nd+"EndpointOperInfo", func(ctx context.Context, r *network.InfoRequest) (any, error) {
		return d.EndpointInfo(ctx, r)
	})
	route(mux, nd+"DeleteEndpoint", func(ctx context.Context, r *network.DeleteEndpointRequest) (any, error) {
		return struct{}{}, d.DeleteEndpoint(ctx, r)
	})
	route(mux, nd+"Join", func(ctx context.Context, r *network.JoinRequest) (any, error) {
		return d.Join(ctx, r)
	})
	route(mux, nd+"Leave", func(ctx context.Context, r *network.LeaveRequest) (any, error) {
		return struct{}{}, d.Leave(ctx, r)
	})
	route(mux, nd+"DiscoverNew", func(ctx context.Context, r *network.DiscoveryNotification) (any, error) {
		return struct{}{}, d.DiscoverNew(ctx, r)
	})
	route(mux, nd+"DiscoverDelete", func(ctx context.Context, r *network.DiscoveryNotification) (any, error) {
		return struct{}{}, d.DiscoverDelete(ctx, r)
	})
	route(mux, nd+"ProgramExternalConnectivity", func(ctx context.Context, r *network.ProgramExternalConnectivityRequest) (any, error) {
		return struct{}{}, d.ProgramExternalConnectivity(ctx, r)
	})
	route(mux, nd+"RevokeExternalConnectivity", func(ctx context.Context, r *network.RevokeExternalConnectivityRequest) (any, error) {
		return struct{}{}, d.RevokeExternalConnectivity(ctx, r)
	})
	route(mux, nd+"GwAllocCheck", func(ctx context.Context, _ *struct{ Options map[string]any }) (any, error) {
		// weft always lets Docker reserve the gateway through IPAM.
		return gwAllocCheckResponse{}, d.wait(ctx)
	})

	ip := "/IpamDriver."
	noBody(mux, ip+"GetCapabilities", func(context.Context) (any, error) { return d.IPAMCapabilities(), nil })
	noBody(mux, ip+"GetDefaultAddressSpaces", func(context.Context) (any, error) { return d.AddressSpaces(), nil })
	route(mux, ip+"RequestPool", func(ctx context.Context, r *dipam.RequestPoolRequest) (any, error) {
		return d.RequestPool(ctx, r)
	})
	route(mux, ip+"ReleasePool", func(ctx context.Context, r *dipam.ReleasePoolRequest) (any, error) {
		return struct{}{}, d.ReleasePool(ctx, r)
	})
	route(mux, ip+"RequestAddress", func(ctx context.Context, r *dipam.RequestAddressRequest) (any, error) {
		return d.RequestAddress(ctx, r)
	})
	route(mux, ip+"ReleaseAddress", func(ctx context.Context, r *dipam.ReleaseAddressRequest) (any, error) {
		return struct{}{}, d.ReleaseAddress(ctx, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("weft does not implement %s %s", r.Method, r.URL.Path))
	})
	return logRequests(log, mux)
}

// route registers a POST handler that decodes a bounded JSON body into Req.
func route[Req any](mux *http.ServeMux, path string, fn func(context.Context, *Req) (any, error)) {
	mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
		req := new(Req)
		if err := decode(w, r, req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%s: %w", path[1:], err))
			return
		}
		resp, err := fn(r.Context(), req)
		respond(w, resp, err)
	})
}

// noBody registers a POST handler for calls dockerd sends without a body.
func noBody(mux *http.ServeMux, path string, fn func(context.Context) (any, error)) {
	mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
		resp, err := fn(r.Context())
		respond(w, resp, err)
	})
}

// decode reads at most MaxRequestBytes of JSON; an empty body decodes to
// the zero request (dockerd sends none for some calls).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fmt.Errorf("request body is larger than %d bytes", MaxRequestBytes)
	}
	if err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("malformed JSON request: %w", err)
	}
	return nil
}

func respond(w http.ResponseWriter, resp any, err error) {
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	sdk.EncodeResponse(w, resp, false)
}

func writeError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorResponse{Err: err.Error(), Error: err.Error()})
}

// logRequests logs each call at debug level and turns a panic into an error
// answer, so one bad request cannot take the plugin down.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				log.Error("request panicked", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				writeError(rec, http.StatusInternalServerError, fmt.Errorf("weft hit an internal error handling %s; see the plugin log", r.URL.Path))
			}
			log.Debug("request", "path", r.URL.Path, "status", rec.status, "took", time.Since(start))
		}()
		next.ServeHTTP(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
