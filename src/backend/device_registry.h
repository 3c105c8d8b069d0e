// Internal to the backend layer: the registered backend of a device type (null when
// none is registered), for backend_for.
#pragma once
#include "txl/backend/backend.h"

namespace txl {

Backend* registered_backend(DeviceType type);

}  // namespace txl
