# Saru native packet I/O addon (native/src). Linux only: AF_PACKET does not
# exist elsewhere, so on other systems the target builds nothing and
# native/index.ts reports UNSUPPORTED_PLATFORM before it would load the addon.
{
  'targets': [
    {
      'target_name': 'saru_packet',
      'conditions': [
        ['OS=="linux"', {
          'sources': ['native/src/packet_socket.cc'],
          'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")"],
          'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', 'NODE_ADDON_API_DISABLE_DEPRECATED'],
          'cflags!': ['-fno-exceptions'],
          'cflags_cc!': ['-fno-exceptions', '-std=gnu++17', '-std=gnu++20'],
          'cflags_cc': ['-std=c++17', '-fexceptions', '-O2', '-Wall', '-Wextra', '-Wno-missing-field-initializers'],
        }, {
          'type': 'none',
        }],
      ],
    },
  ],
}
