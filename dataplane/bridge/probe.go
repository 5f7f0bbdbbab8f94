package bridge

import (
	"context"
	"errors"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/nl"
)

var _ dataplane.EndpointProber = (*Mode)(nil)

// EndpointExists reports whether ep's host-side veth is still there. The host
// end never leaves the host namespace, and the kernel deletes the whole pair
// when the container's namespace goes, so its absence means the endpoint is dead.
func (m *Mode) EndpointExists(_ context.Context, _ dataplane.Network, ep dataplane.Endpoint) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	host, _ := VethNames(ep.ID)
	_, err := m.nl.LinkByName(host)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, nl.ErrLinkNotFound):
		return false, nil
	default:
		return false, err
	}
}
