package bridge

import (
	"context"
	"errors"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/nl"
)

var _ dataplane.EndpointProber = (*Mode)(nil)

// EndpointState looks for ep's veths in the host namespace. The host end never
// leaves it, and the kernel deletes the whole pair when the container's
// namespace goes, so its absence means the endpoint is gone. The container end
// is in the host namespace under its own name only before Docker moves it into
// the container and after Docker moved it back out.
func (m *Mode) EndpointState(_ context.Context, _ dataplane.Network, ep dataplane.Endpoint) (dataplane.EndpointState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	host, cont := VethNames(ep.ID)
	for i, name := range []string{host, cont} {
		_, err := m.nl.LinkByName(name)
		switch {
		case err == nil && i == 1:
			return dataplane.EndpointDetached, nil
		case err == nil:
		case !errors.Is(err, nl.ErrLinkNotFound):
			return dataplane.EndpointInUse, err
		case i == 0:
			return dataplane.EndpointGone, nil
		}
	}
	return dataplane.EndpointInUse, nil
}
