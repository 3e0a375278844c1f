{
  "targets": [
    {
      "target_name": "qbipc_native",
      "sources": [
        "native/addon.cc",
        "native/args.cc",
        "native/errors.cc",
        "native/socket.cc",
        "native/shm.cc",
        "native/futex.cc",
        "native/poller.cc",
        "native/dgram.cc",
        "native/semwait.cc",
        "native/busguard.cc",
        "native/sched.cc",
        "native/copy.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-Wl,-z,nodelete"]
    }
  ]
}
